"""SGD with momentum (`TrainConfig(optimizer='sgd')`) and atoms started from data
(`atom_init='data'`): the k-sparse paper's recipe (tied k-sparse AE) through the trainer."""

from __future__ import annotations

import json

import pytest
import torch

import sparseae
from sparseae.errors import ConfigError
from sparseae.training.optim import LeanAdam, MomentumSGD
from sparseae.training.trainer import Trainer

from .helpers import digits


def _ksparse(tied: bool = True) -> sparseae.Autoencoder:
    torch.manual_seed(0)
    return sparseae.Autoencoder(
        d_in=64, n_latents=128, tied=tied, code_activation="linear",
        output_activation="linear", loss="mse", sparsity="topk", sparsity_params={"k": 6},
    )  # fmt: skip


def test_sgd_with_momentum_trains_and_resumes_exactly(tmp_path):
    x, _ = digits(640)
    cfg = sparseae.TrainConfig(epochs=4, batch_size=64, optimizer="sgd", lr=0.5, seed=3)
    straight = _ksparse()
    trainer = Trainer(straight, cfg, progress=False)
    history = trainer.fit(x)
    assert isinstance(trainer.optimizer, MomentumSGD)
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9
    losses = [r["loss"] for r in history.records]
    assert losses[-1] < 0.6 * losses[0]

    class Crash(sparseae.Callback):
        def on_step_end(self, trainer, out):
            if trainer.global_step == 23:  # after the step-21 checkpoint, mid-epoch 3
                raise KeyboardInterrupt

    crashed = _ksparse()
    with pytest.raises(KeyboardInterrupt):
        Trainer(crashed, cfg, checkpoint_dir=tmp_path, checkpoint_every=7, callbacks=[Crash()],
                progress=False).fit(x)  # fmt: skip
    resumed = _ksparse()
    Trainer(resumed, cfg, checkpoint_dir=tmp_path, checkpoint_every=7, progress=False).fit(
        x, resume=True
    )  # the momentum buffers came back from the checkpoint: the same weights to the bit
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_adam_stays_the_default_and_sgd_differs_from_it():
    x, _ = digits(256)
    weights = {}
    for opt in ("adam", "sgd"):
        model = _ksparse()
        trainer = Trainer(model, sparseae.TrainConfig(epochs=1, optimizer=opt), progress=False)
        trainer.fit(x)
        weights[opt] = model.encoder_atoms().weight.detach().clone()
        assert isinstance(trainer.optimizer, LeanAdam if opt == "adam" else MomentumSGD)
    assert not torch.allclose(weights["adam"], weights["sgd"])


@pytest.mark.parametrize("tied", [True, False])
def test_atom_init_data_starts_every_atom_at_a_centred_input(tied):
    x, _ = digits()
    model = _ksparse(tied)
    cfg = sparseae.TrainConfig(epochs=1, atom_init="data", atom_init_norm=0.3, b_dec_init="mean")
    trainer = Trainer(model, cfg, progress=False)
    trainer._initialize_from_data(torch.as_tensor(x))
    dec, enc = model.decoder_atoms(), model.encoder_atoms()
    atoms, rows = dec.rows(dec.weight).detach(), enc.rows(enc.weight).detach()
    torch.testing.assert_close(atoms.norm(dim=1), torch.full((128,), 0.3))
    torch.testing.assert_close(rows, atoms)
    # each atom is the direction of one training input minus the mean, no two the same
    centred = torch.as_tensor(x) - torch.as_tensor(x).mean(0)
    cos = (atoms / 0.3) @ (centred / centred.norm(dim=1, keepdim=True)).t()
    best = cos.max(1)
    assert best.values.min() > 1 - 1e-5 and best.indices.unique().numel() == 128
    # and far fewer latents are silent from the first step than from the random start
    # (seen: 5 of 128 against 60)
    silent = {}
    for init, m in (("data", model), ("model", _ksparse(tied))):
        m.train()  # the training k
        with torch.no_grad():
            silent[init] = int(((m.encode(torch.as_tensor(x)) != 0).sum(0) == 0).sum())
    assert silent["data"] * 4 < silent["model"]


def test_atom_init_keeps_the_models_norms_unless_told():
    x, _ = digits()
    model = _ksparse(tied=False)
    before = model.decoder_atoms().rows(model.decoder_atoms().weight).norm(dim=1).detach()
    cfg = sparseae.TrainConfig(epochs=1, atom_init="data", b_dec_init="mean")
    Trainer(model, cfg, progress=False)._initialize_from_data(torch.as_tensor(x))
    after = model.decoder_atoms().rows(model.decoder_atoms().weight).norm(dim=1).detach()
    torch.testing.assert_close(after, before)


def test_sgd_and_atom_init_errors_are_one_clear_line(capsys, tmp_path):
    with pytest.raises(ConfigError, match="atom_init_norm applies to atom_init='data'"):
        sparseae.TrainConfig(atom_init_norm=0.3)
    with pytest.raises(ConfigError, match="optimizer"):
        sparseae.TrainConfig(optimizer="rmsprop")
    x, _ = digits(64)  # fewer inputs than latents: no distinct input per atom
    trainer = Trainer(_ksparse(), sparseae.TrainConfig(atom_init="data"), progress=False)
    with pytest.raises(ConfigError, match="needs 128 inputs of width 64"):
        trainer.fit(x)
    from tests.test_cli import run_cli

    argv = ["train", "--dataset", "digits", "--n-latents", "32", "--epochs", "1", "--no-progress"]
    paper = ["--tied", "--code-activation", "linear", "--output-activation", "linear",
             "--sparsity", "topk", "--k", "4", "--alpha", "3", "--relu", "false"]  # fmt: skip
    code, _, err = run_cli(capsys, *argv, *paper, "--optimizer", "sgd", "--sgd-momentum", "0.5",
                           "--lr", "0.05", "--atom-init", "data", "--b-dec-init", "mean",
                           "--out", str(tmp_path / "ok"))  # fmt: skip
    assert code == 0, err
    saved = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert saved["train"]["optimizer"] == "sgd" and saved["train"]["sgd_momentum"] == 0.5
    assert saved["train"]["atom_init"] == "data"
    assert saved["model"]["sparsity_params"]["relu"] is False and saved["model"]["tied"]
    code, _, err = run_cli(capsys, *argv, "--relu", "maybe", "--out", str(tmp_path / "bad"))
    assert code == 2 and "expected true or false" in err
    code, _, err = run_cli(capsys, *argv, "--sgd-momentum", "1.5", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--sgd-momentum" in err and "[0, 1)" in err


def test_resample_scale_sets_the_norm_a_resampled_tied_atom_restarts_at(capsys, tmp_path):
    from sparseae.training.dictionary import ResampleDeadLatents, resample_latents
    from tests.test_cli import run_cli

    x, _ = digits(256)
    xt = torch.as_tensor(x, dtype=torch.float32)
    for scale in (0.05, 0.5):
        model = _ksparse()
        rows = model.encoder_atoms().rows(model.encoder_atoms().weight)
        dead = torch.tensor([3, 40, 77])
        alive = torch.ones(128, dtype=torch.bool)
        alive[dead] = False
        live_norm = float(rows[alive].detach().norm(dim=1).mean())
        with torch.no_grad():
            x_hat = model(xt)
        resample_latents(model, xt, x_hat, dead, scale, optimizer=None)
        # tied: the encoder row is the atom, so the atom itself restarts at that norm
        after = model.decoder_atoms_or_raise().rows(model.decoder_atoms_or_raise().weight)
        torch.testing.assert_close(after[dead].norm(dim=1), torch.full((3,), scale * live_norm))
    cfg = sparseae.TrainConfig(epochs=1, dead_after=64, resample_every=4, resample_scale=0.05)
    trainer = Trainer(_ksparse(), cfg, progress=False)
    trainer.fit(x)
    (resample,) = [cb for cb in trainer.callbacks if isinstance(cb, ResampleDeadLatents)]
    assert resample.enc_scale == 0.05
    with pytest.raises(ConfigError, match="resample_scale"):
        sparseae.TrainConfig(resample_scale=0.0)
    argv = ["train", "--dataset", "digits", "--n-latents", "32", "--epochs", "1", "--no-progress",
            "--dead-after", "64", "--resample-every", "4"]  # fmt: skip
    code, _, err = run_cli(capsys, *argv, "--resample-scale", "0.3", "--out", str(tmp_path / "ok"))
    assert code == 0, err
    saved = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert saved["train"]["resample_scale"] == 0.3
    code, _, err = run_cli(capsys, *argv, "--resample-scale", "0", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--resample-scale" in err


def test_a_run_saved_before_a_setting_existed_resumes(tmp_path):
    """A checkpoint written before ``resample_scale`` / ``optimizer`` / ``atom_init`` (or a
    model setting) existed lacks them; their defaults are what that run did, so resume must
    not refuse it."""
    from sparseae.training import state

    x, _ = digits(256)
    cfg = sparseae.TrainConfig(epochs=2, batch_size=64, dead_after=64, resample_every=4)
    Trainer(_ksparse(), cfg.replace(epochs=1), checkpoint_dir=tmp_path, progress=False).fit(x)
    path = tmp_path / state.TRAINER_STATE_FILE
    tensors, info = state.read_state(path)
    for name in ("resample_scale", "optimizer", "sgd_momentum", "atom_init", "atom_init_norm"):
        del info["train_config"][name]
    for name in ("corruption", "corruption_params"):  # the model's settings likewise
        del info["model"]["config"][name]
    state.write_state(path, tensors, info)
    more = {"resume": True, "allow_changes": ("epochs",)}
    history = Trainer(_ksparse(), cfg, checkpoint_dir=tmp_path, progress=False).fit(x, **more)
    assert [r["epoch"] for r in history.records] == [1, 2]
    changed = cfg.replace(epochs=3, resample_scale=0.5)  # a real change is still refused
    with pytest.raises(ConfigError, match=r"resample_scale: 0.2 -> 0.5"):
        Trainer(_ksparse(), changed, checkpoint_dir=tmp_path, progress=False).fit(x, **more)


def test_lr_decay_steps_take_the_lr_linearly_to_zero_over_the_last_steps(capsys, tmp_path):
    from sparseae.training.callbacks import Callback
    from sparseae.training.schedules import lr_factor
    from tests.test_cli import run_cli

    assert [lr_factor("constant", s, 10, 0, 4) for s in range(10)] == [
        1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25
    ]  # fmt: skip
    assert lr_factor("cosine", 8, 10, 0, 4) == pytest.approx(lr_factor("cosine", 8, 10, 0) * 0.5)

    class LrSeen(Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_step_end(self, trainer, out) -> None:
            self.lrs.append(trainer.optimizer.param_groups[0]["lr"])

    x, _ = digits(256)  # 4 steps an epoch at batch 64: 8 steps, the last 4 decaying
    seen = LrSeen()
    cfg = sparseae.TrainConfig(epochs=2, batch_size=64, optimizer="sgd", lr=0.4, lr_decay_steps=4)
    Trainer(_ksparse(), cfg, callbacks=[seen], progress=False).fit(x)
    assert seen.lrs == pytest.approx([0.4] * 4 + [0.4, 0.3, 0.2, 0.1])
    with pytest.raises(ConfigError, match="lr_decay_steps"):
        sparseae.TrainConfig(lr_decay_steps=-1)
    argv = ["train", "--dataset", "digits", "--n-latents", "32", "--epochs", "1", "--no-progress"]
    code, _, err = run_cli(capsys, *argv, "--lr-decay-steps", "7", "--out", str(tmp_path / "ok"))
    assert code == 0, err
    saved = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert saved["train"]["lr_decay_steps"] == 7
    code, _, err = run_cli(capsys, *argv, "--lr-decay-steps", "-2", "--out", str(tmp_path / "no"))
    assert code == 2 and "--lr-decay-steps" in err
    # a decay longer than the run would hold the lr near 0 throughout: refused, with the fix
    with pytest.raises(ConfigError, match="more than the run's 8 steps .* use at most 8"):
        Trainer(_ksparse(), cfg.replace(lr_decay_steps=9), progress=False).fit(x)
    code, _, err = run_cli(capsys, *argv, "--lr-decay-steps", "999", "--out", str(tmp_path / "n"))
    assert code == 2 and "use at most" in err and "Traceback" not in err
