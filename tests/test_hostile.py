"""Hostile and careless inputs: each case ends in one clear line and a non-zero exit (CLI)
or a typed error (library), never a traceback, a silent wrong result or lost work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sparseae
from sparseae.cli import main
from sparseae.errors import CheckpointError, ConfigError, DataError, TrainingDivergedError

from .helpers import digits

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--dataset", "digits", "--hidden", "16", "--epochs", "2", "--no-progress"]


def cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- divergence is more than NaN ----------------------------------------------------------------
def test_an_exploding_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *QUICK, "--code-activation", "linear", "--output-activation", "linear"]
    code, _, err = cli(capsys, *args, "--lr", "1e4", "--out", str(out))
    assert code == 2
    assert "loss exploded" in one_line(err) and "--lr" in err
    assert not (out / "model.safetensors").exists()  # nothing bad was saved as if good
    # a deliberately odd but healthy run (a high learning rate that converges) is not stopped
    code, _, err = cli(capsys, *args, "--lr", "3e-2", "--out", str(tmp_path / "ok"))
    assert code == 0, err


def test_a_collapsed_code_stops_the_run(tmp_path, capsys):
    args = ["train", *QUICK, "--sparsity", "kl", "--lr", "1e6"]
    code, _, err = cli(capsys, *args, "--out", str(tmp_path / "kl"))
    assert code == 2 and "every latent is dead" in one_line(err)
    code, _, err = cli(capsys, *args, "--no-collapse-check", "--out", str(tmp_path / "kl2"))
    assert code == 0, err  # the threshold is settable


def test_collapse_in_a_later_epoch_keeps_the_earlier_checkpoint(tmp_path):
    x, _ = digits(512)
    model = sparseae.Autoencoder(d_in=64, n_latents=16)

    class Kill(sparseae.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if epoch == 1:
                with torch.no_grad():  # every code unit's bias far below zero: all dead
                    model.backbone.enc_biases[-1].fill_(-1e6)

    trainer = sparseae.Trainer(
        model, sparseae.TrainConfig(epochs=2, batch_size=64), callbacks=[Kill()],
        checkpoint_dir=tmp_path, progress=False,
    )  # fmt: skip
    with pytest.raises(TrainingDivergedError, match="epoch 2.*kept in"):
        trainer.fit(x)
    saved = sparseae.load(tmp_path)
    assert bool((saved.encode(x) != 0).any())  # the epoch-1 model, not the collapsed one


# -- resume means the same run ------------------------------------------------------------------
@pytest.fixture
def finished(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, "train", *QUICK, "--out", str(out))[0] == 0
    return out


@pytest.mark.parametrize(
    ("change", "listed"),
    [
        (["--lr", "0.01"], "lr: 0.001 -> 0.01"),
        (["--batch-size", "64"], "batch_size: 32 -> 64"),
        (["--seed", "3"], "seed: 0 -> 3"),
        (["--hidden", "24"], "model config"),
        (["--limit", "500"], "data:"),
    ],
)
def test_resume_with_other_settings_is_refused_listing_them(finished, capsys, change, listed):
    code, _, err = cli(capsys, "train", *QUICK, "--out", str(finished), "--resume", *change)
    assert code == 2 and listed in one_line(err)


def test_resume_into_a_folder_with_nothing_to_resume_is_an_error(tmp_path, capsys):
    code, _, err = cli(capsys, "train", *QUICK, "--out", str(tmp_path / "typo"), "--resume")
    assert code == 2 and "nothing to resume" in one_line(err)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
        lambda p: p.write_text("not a safetensors file"),  # foreign bytes
        lambda p: save_file({"w": torch.zeros(2)}, str(p)),  # safetensors, not ours
    ],
    ids=["truncated", "foreign", "no-metadata"],
)
def test_a_corrupt_trainer_state_is_a_typed_error_naming_the_file(finished, capsys, damage):
    state = finished / "trainer_state.safetensors"
    damage(state)
    code, _, err = cli(capsys, "train", *QUICK, "--out", str(finished), "--resume")
    assert code == 2 and "trainer_state.safetensors" in one_line(err)


# -- run folders --------------------------------------------------------------------------------
def test_a_finished_run_is_not_overwritten_without_asking(finished, capsys):
    before = (finished / "model.safetensors").read_bytes()
    code, _, err = cli(capsys, "train", *QUICK, "--out", str(finished))
    assert code == 2 and "already holds a run" in one_line(err) and "--overwrite" in err
    assert (finished / "model.safetensors").read_bytes() == before
    assert (
        cli(capsys, "train", *QUICK, "--seed", "4", "--out", str(finished), "--overwrite")[0] == 0
    )
    assert (finished / "model.safetensors").read_bytes() != before


def test_an_unusable_output_is_refused_before_training(tmp_path, capsys):
    file = tmp_path / "a_file"
    file.write_text("x")
    t0 = time.perf_counter()
    code, out, err = cli(capsys, "train", *QUICK, "--out", str(file))
    assert code == 2 and "is a file" in one_line(err) and "epoch" not in out
    if os.geteuid() != 0:  # root may write anywhere: the permission case needs a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        code, _, err = cli(capsys, "train", *QUICK, "--out", str(ro / "run"))
        assert code == 2 and "cannot write" in one_line(err)
    assert time.perf_counter() - t0 < 5


def test_a_second_writer_is_refused_at_once_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    slow = ["train", "--dataset", "digits", "--hidden", "16", "--epochs", "400", "--no-progress"]
    first = subprocess.Popen(
        [sys.executable, "-m", "sparseae", *slow, "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / ".sparseae.lock").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.02)
        code, _, err = cli(capsys, "train", *QUICK, "--out", str(out), "--overwrite")
        assert code == 2 and f"in use by another sparseae run (pid {first.pid})" in one_line(err)
    finally:
        first.kill()
        first.wait()
    # the killed writer's lock is stale: the next run takes it over
    assert (out / ".sparseae.lock").exists()
    code, _, err = cli(capsys, "train", *QUICK, "--out", str(out), "--overwrite")
    assert code == 0, err
    assert not (out / ".sparseae.lock").exists()  # released at the end


def test_stale_temporary_files_are_removed(finished, capsys):
    orphan = finished / ".model.safetensors.abc123.tmp"
    orphan.write_bytes(b"\0" * 1000)
    assert cli(capsys, "train", *QUICK, "--epochs", "3", "--out", str(finished), "--resume",
               "--allow-change", "epochs")[0] == 0  # fmt: skip
    assert not orphan.exists()


def test_a_full_disk_is_a_typed_error_and_the_last_checkpoint_stays(tmp_path, monkeypatch):
    import errno

    from sparseae import atomic

    x, _ = digits(256)
    model = sparseae.Autoencoder(d_in=64, n_latents=8)
    real = atomic.save_file
    calls = {"n": 0}

    def fills_up(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] > 2:  # the first epoch's model and trainer state fit, then not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(atomic, "save_file", fills_up)
    trainer = sparseae.Trainer(model, sparseae.TrainConfig(epochs=3), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="No space left on device.*previous version"):
        trainer.fit(x)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert sparseae.load(tmp_path).config == model.config  # epoch 1's folder is intact


# -- loading an untrusted folder ----------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    model = sparseae.SAE(d_in=16, n_latents=32, sparsity_params={"k": 4})
    sparseae.save(model, tmp_path / "m")
    return tmp_path / "m"


def _edit_config(folder: Path, **model_changes) -> None:
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for key, value in model_changes.items():
        if value is ...:
            cfg.pop(key)
        else:
            cfg["model"][key] = value
    path.write_text(json.dumps(cfg))


def test_a_config_claiming_a_huge_model_is_refused_within_a_small_memory_bound(saved):
    _edit_config(saved, n_latents=5_000_000)
    script = f"""
import resource, sparseae
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    sparseae.load({str(saved)!r})
except sparseae.CheckpointError as exc:
    print("refused:", exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("grew_kb", after - before)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert "refused:" in out.stdout and "does not match config.json" in out.stdout, out.stderr
    grew_mb = int(out.stdout.split("grew_kb")[1]) / 1024
    assert grew_mb < 50, grew_mb  # the claimed model would need 2.4 GB of float32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": ...}, "'model' must be an object"),
        ({"hidden": "abc"}, "has no field(s) hidden"),
        ({"n_latents": "abc"}, "SAEConfig.n_latents must be an integer"),
        ({"sparsity": "nope"}, "unknown sparsity 'nope'"),
    ],
)
def test_a_malformed_config_is_a_typed_error_naming_the_file(saved, change, message):
    if "model" in change:
        _edit_config(saved, model=...)
    else:
        _edit_config(saved, **change)
    with pytest.raises(CheckpointError, match="config.json") as info:
        sparseae.load(saved)
    assert message in str(info.value)


def test_a_model_list_config_and_non_finite_or_integer_weights_are_refused(saved):
    path = saved / "config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "model": [1, 2]}))
    with pytest.raises(CheckpointError, match="'model' must be an object"):
        sparseae.load(saved)
    path.write_text(json.dumps(cfg))
    weights = saved / "model.safetensors"
    state = sparseae.load(saved).state_dict()
    save_file({**state, "W_dec": torch.full_like(state["W_dec"], float("nan"))}, str(weights))
    with pytest.raises(CheckpointError, match="W_dec hold NaN"):
        sparseae.load(saved)
    save_file({**state, "W_dec": state["W_dec"].to(torch.int64)}, str(weights))
    with pytest.raises(CheckpointError, match="W_dec is .* I64 where config.json implies"):
        sparseae.load(saved)


# -- parameters are validated where they are declared -------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_grad_norm": -1}, "max_grad_norm must be"),
        ({"betas": (1.5, 0.9)}, "betas must be two numbers in \\[0, 1\\)"),
        ({"eps": -1}, "eps must be a finite number > 0"),
        ({"eval_batch_size": 0}, "eval_batch_size must be an integer >= 1"),
        ({"lr": float("inf")}, "lr must be a finite number > 0"),
    ],
)
def test_train_config_refuses_bad_values_at_construction(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        sparseae.TrainConfig(**kwargs)


def test_model_configs_and_fit_refuse_bad_shapes():
    with pytest.raises(ConfigError, match="hidden must be a list whose every item is an integer"):
        sparseae.Autoencoder(d_in=8, hidden=[1.5], n_latents=2)
    model = sparseae.Autoencoder(d_in=8, n_latents=2)
    with pytest.raises(DataError, match="has 5 features per row but the model takes 8"):
        sparseae.fit(model, np.zeros((10, 5), np.float32), epochs=1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hidden", "100,,300"], "expected comma-separated positive integers"),
        (["--sparsity", "topk", "--k", "4", "--alpha", "inf"], "alpha"),
        (["--seed", "1" * 22], "seed must be"),
        (["--scale", "standard", "--loss", "bce"], "bce loss needs inputs in [0, 1]"),
    ],
)
def test_bad_command_line_values_are_one_line_with_exit_2(tmp_path, capsys, argv, message):
    base = ["train", "--dataset", "digits", "--epochs", "1", "--no-progress"]
    code, _, err = cli(capsys, *base, *argv, "--out", str(tmp_path / "r"))
    assert code == 2 and message in one_line(err)
