import pytest
import torch

import sparseae
from sparseae.errors import TrainingDivergedError
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
    seen = {}

    class Poison(sparseae.Callback):
        """At the start of epoch 2 remember the good state, then break the weights."""

        def on_epoch_begin(self, trainer, epoch):
            if epoch == 1:
                seen["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
                seen["saved"] = (tmp_path / "model.safetensors").read_bytes()
                with torch.no_grad():
                    model.backbone.enc_weights[0].fill_(float("nan"))

    trainer = Trainer(
        model,
        sparseae.TrainConfig(epochs=2, batch_size=64),
        callbacks=[Poison()],
        checkpoint_dir=tmp_path,
        progress=False,
    )
    with pytest.raises(TrainingDivergedError, match="NaN/inf at epoch 2.*lower the learning rate"):
        trainer.fit(x)
    assert (tmp_path / "model.safetensors").read_bytes() == seen["saved"]
    for k, v in model.state_dict().items():  # the weights of that epoch's start, restored
        assert torch.equal(v, seen["weights"][k]), k
    assert sparseae.load(tmp_path).config == model.config  # the last good checkpoint loads


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


def test_progress_advances_over_the_whole_run_and_ends_with_a_summary(capsys):
    x, _ = digits(256)
    model = _model()
    sparseae.fit(model, x, x[:64], epochs=3, batch_size=32, progress=True)
    err = capsys.readouterr().err
    assert "24/24" in err  # one bar for the run: 3 epochs x 8 steps, advanced to the end
    last = err.strip().splitlines()[-1]
    assert last.startswith("trained 3 epochs (24 steps) in") and "val_recon" in last
