"""A training run killed with SIGKILL at arbitrary points resumes to the very same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sparseae.cli import main
from sparseae.data.shards import write_shards
from sparseae.training.trainer import TRAINER_STATE_FILE

ROOT = Path(__file__).resolve().parent.parent


MODELS = {
    # a denoising k-sparse autoencoder with a cosine schedule
    "autoencoder": [
        "--hidden", "48,32", "--sparsity", "topk", "--k", "4",
        "--corruption", "dropout", "--corruption-p", "0.1", "--lr-schedule", "cosine",
    ],
    # the dictionary SAE with AuxK on tracked dead latents and a k warm-up still running
    # when the first kill lands (its state and the tracker's are in the trainer state)
    "sae": [
        "--model", "sae", "--n-latents", "96", "--sparsity", "topk", "--k", "4",
        "--dead-after", "160", "--aux-k", "8", "--sparsity-warmup", "600", "--k-start", "24",
    ],
}  # fmt: skip


def _args(data: Path, out: Path, model: str = "autoencoder") -> list[str]:
    return [
        "train", "--dataset", str(data), *MODELS[model],
        "--epochs", "8", "--batch-size", "16", "--seed", "7", "--device", "cpu",
        "--threads", "1", "--checkpoint-every", "40", "--no-progress", "--out", str(out),
    ]  # fmt: skip


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "sparseae", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it finished first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("model", sorted(MODELS))
def test_sigkill_at_any_point_resumes_to_the_uninterrupted_weights(tmp_path, model):
    rng = np.random.default_rng(0)
    data = tmp_path / "acts"
    write_shards(data, rng.standard_normal((2000, 32)).astype(np.float32), rows_per_shard=300)

    killed = tmp_path / "killed"
    state = killed / TRAINER_STATE_FILE
    args = _args(data, killed, model)
    # 1st kill: right after the first checkpoint lands; 2nd kill: once the resumed run has
    # moved on (mtime changes: mid-epoch or mid-write, wherever it happens to be)
    proc = _start(args)
    assert _kill_when(proc, state.exists), "the run ended before it could be killed"
    first = state.stat().st_mtime_ns
    proc = _start([*args, "--resume"])
    assert _kill_when(proc, lambda: state.stat().st_mtime_ns != first), "not killed"
    proc = _start([*args, "--resume"])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:]
    resumed_at = int(out.split("resumed from the checkpoint at step ")[1].split()[0])
    assert 0 < resumed_at < 8 * 125  # it did resume, from the middle of the run

    straight = tmp_path / "straight"
    assert main(_args(data, straight, model)) == 0
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    history = [json.loads(line) for line in (straight / "history.jsonl").read_text().splitlines()]
    assert history[-1]["loss"] < 0.9 * history[0]["loss"]  # it trained: not two initialisations
    resumed = [json.loads(line) for line in (killed / "history.jsonl").read_text().splitlines()]
    for a_rec, b_rec in zip(history, resumed, strict=True):  # whole epochs, also resumed ones
        assert a_rec["loss"] == pytest.approx(b_rec["loss"], rel=1e-9), a_rec["epoch"]
