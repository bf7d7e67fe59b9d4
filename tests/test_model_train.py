import math

import pytest
import torch

import sparseae
from sparseae.errors import DataError, TrainingDivergedError
from sparseae.training.trainer import Trainer

from .helpers import digits


def _model(**kw):
    torch.manual_seed(0)
    base = dict(d_in=64, hidden=[32], n_latents=16, activation="relu")
    base.update(kw)
    return sparseae.Autoencoder(**base)


def test_loss_falls_and_history_records_every_term():
    x, _ = digits()
    model = _model(sparsity="l1", sparsity_params={"weight": 1e-3})
    hist = sparseae.fit(model, x[:1200], x[1200:1500], epochs=5, batch_size=64, progress=False)
    assert len(hist) == 5
    assert hist["val_recon"][-1] < 0.6 * hist["val_recon"][0]
    rec = hist.last
    for key in (
        "loss",
        "recon",
        "sparsity",
        "val_recon",
        "val_l0",
        "val_frac_inactive",
        "val_dead_latents",
        "seconds",
    ):
        assert key in rec, key
    assert 0 <= rec["val_frac_inactive"] <= 1
    assert rec["loss"] == pytest.approx(rec["recon"] + rec["sparsity"], rel=1e-5)


def test_training_is_reproducible_with_a_seed():
    x, _ = digits(600)
    outs = []
    for _ in range(2):
        model = _model(corruption="gaussian", corruption_params={"sigma": 0.2})
        sparseae.fit(model, x, epochs=2, batch_size=32, seed=3, progress=False)
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1])


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_weights(tmp_path):
    x, _ = digits(512)
    model = _model()
    trainer = Trainer(
        model,
        sparseae.TrainConfig(epochs=1, batch_size=64),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    trainer.fit(x)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    saved = (tmp_path / "model.safetensors").read_bytes()
    bad = x.clone()
    bad_trainer = Trainer(
        model,
        sparseae.TrainConfig(epochs=1, batch_size=64, lr=1e30),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    with pytest.raises(TrainingDivergedError, match="NaN/inf at epoch 1.*lower the learning rate"):
        bad_trainer.fit(bad * 1e30)
    for k, v in model.state_dict().items():
        assert torch.equal(v, good[k]), k
    assert (tmp_path / "model.safetensors").read_bytes() == saved


def test_bad_training_data_is_a_data_error():
    model = _model()
    x, _ = digits(64)
    x[3, 5] = math.nan
    with pytest.raises(DataError, match="NaN or inf"):
        sparseae.fit(model, x, epochs=1, progress=False)
    with pytest.raises(DataError, match="non-empty"):
        sparseae.fit(model, torch.zeros(0, 64), epochs=1, progress=False)


def test_save_load_round_trip_is_bit_exact_and_never_unpickles(tmp_path, monkeypatch):
    x, _ = digits(300)
    model = _model(
        tied=True, sparsity="topk", sparsity_params={"k": 4, "alpha": 2}, code_activation="linear"
    )
    hist = sparseae.fit(model, x, x[:50], epochs=2, progress=False)
    sparseae.save(model, tmp_path / "run", history=hist.records)

    def no_pickle(*a, **k):
        raise AssertionError("load must not unpickle")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = sparseae.load(tmp_path / "run")
    model.eval()
    assert torch.equal(loaded(x), model(x))
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert loaded.config == model.config
    assert sparseae.read_history(tmp_path / "run") == hist.records


def test_tied_decoder_shares_storage_with_encoder():
    model = _model(tied=True)
    bb = model.backbone
    assert bb.dec_weights is None
    assert bb.decoder_weight(0).data_ptr() == bb.enc_weights[-1].data_ptr()
    n_untied = sum(p.numel() for p in _model().parameters())
    n_tied = sum(p.numel() for p in model.parameters())
    assert n_tied == n_untied - (64 * 32 + 32 * 16)


def test_load_errors_are_checkpoint_errors(tmp_path):
    with pytest.raises(sparseae.CheckpointError, match="does not exist"):
        sparseae.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(sparseae.CheckpointError, match="no config.json"):
        sparseae.load(tmp_path / "empty")
    model = _model()
    sparseae.save(model, tmp_path / "run")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(sparseae.CheckpointError, match="not a readable safetensors"):
        sparseae.load(tmp_path / "run")


def test_interrupted_save_leaves_previous_files_intact(tmp_path, monkeypatch):
    from sparseae import atomic

    model = _model()
    sparseae.save(model, tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(atomic, "save_file", boom)
    with torch.no_grad():
        model.backbone.enc_biases[0].add_(1.0)
    with pytest.raises(OSError):
        sparseae.save(model, tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    x, _ = digits(640)
    cfg = sparseae.TrainConfig(epochs=4, batch_size=64, seed=5, lr_schedule="cosine")
    straight = _model(corruption="dropout", corruption_params={"p": 0.2})
    Trainer(straight, cfg, progress=False).fit(x)

    # checkpointing itself must not change the result
    first = _model(corruption="dropout", corruption_params={"p": 0.2})
    Trainer(first, cfg, checkpoint_dir=tmp_path, checkpoint_every=7, progress=False).fit(x)
    tmp2 = tmp_path / "crash"
    crashed = _model(corruption="dropout", corruption_params={"p": 0.2})

    class Crash(sparseae.Callback):
        def on_step_end(self, trainer, out):
            if trainer.global_step == 23:  # mid-epoch 3, after the step-21 checkpoint
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(
            crashed,
            cfg,
            checkpoint_dir=tmp2,
            checkpoint_every=7,
            callbacks=[Crash()],
            progress=False,
        ).fit(x)
    resumed = _model(corruption="dropout", corruption_params={"p": 0.2})
    Trainer(resumed, cfg, checkpoint_dir=tmp2, checkpoint_every=7, progress=False).fit(
        x, resume=True
    )
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for (k, a), b in zip(straight.state_dict().items(), first.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_compiled_step_trains_like_the_eager_one():
    from sparseae.training.trainer import Trainer

    x, _ = digits(640)
    runs = {}
    for compile_ in (False, True):
        model = _model(sparsity="kl", code_activation="sigmoid", loss="bce")
        # eager autograd is the reference (not the hand-derived step, which compile skips)
        cfg = sparseae.TrainConfig(
            epochs=2, batch_size=32, seed=1, compile=compile_, manual_backward=False
        )
        trainer = Trainer(model, cfg, progress=False)
        hist = trainer.fit(x)
        assert trainer.fused is None
        if compile_:  # it really ran compiled: no silent fall-back to eager
            assert trainer.step_fn.compiled_fn() is not None
        weights = torch.cat([p.detach().flatten() for p in model.parameters()])
        runs[compile_] = (hist["loss"], weights)
    # same arithmetic up to kernel fusion's floating-point reordering
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-3)
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-4)


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(fn, *args, **kwargs):
        def raise_(*a, **k):
            raise RuntimeError("no C++ compiler found")

        return raise_

    monkeypatch.setattr(torch, "compile", broken_compile)
    x, _ = digits(320)
    model = _model()
    with pytest.warns(UserWarning, match="torch.compile failed .*no C\\+\\+ compiler"):
        hist = sparseae.fit(model, x, epochs=2, batch_size=32, progress=False, compile=True)
    assert hist["loss"][-1] < hist["loss"][0]
