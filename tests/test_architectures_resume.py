"""Every architecture of issue #17 trains "with resume and DDP like the rest": Matryoshka
BatchTopK, gated, transcoder, the SAE with decoder-norm L1 and the SAE with p-annealing.

- Library: a run interrupted mid-epoch (after a step checkpoint, so the resumed run replays
  steps) and resumed ends with the uninterrupted run's weights, bit for bit. The Lp
  schedule has a change of p among the replayed steps, so its rescaled coefficient (a
  buffer) must come back from the trainer state.
- CLI: ``sparseae train`` stopped after one epoch and continued with ``--resume`` writes the
  uninterrupted run's model.safetensors.
- DDP: 2 gloo processes (``tests/ddp_arch_worker.py``) end with identical parameters on both
  ranks (and the same Lp coefficient); where the loss is a per-sample mean (all but
  BatchTopK's batch statistic) they match one process up to float reordering.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import sparseae
from sparseae.cli import main
from sparseae.training.trainer import Trainer

from .helpers import digits

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
CONFIG = sparseae.TrainConfig(epochs=3, batch_size=32, seed=1, lr=3e-3, device="cpu",
                              num_threads=1)  # fmt: skip
#: Lp annealed in 5 stages over steps 4..34 (changes at 10, 16, 22, 28), penalty warm-up
LP = {"weight": 2e-3, "p_end": 0.3, "anneal_start": 4, "anneal_steps": 30, "stages": 5}

KINDS: dict[str, Callable[[], torch.nn.Module]] = {
    "matryoshka": lambda: sparseae.MatryoshkaSAE(
        d_in=64, n_latents=32, widths=(8, 16), sparsity_params={"k": 4}
    ),
    "gated": lambda: sparseae.GatedSAE(d_in=64, n_latents=32, weight=1e-3),
    "transcoder": lambda: sparseae.Transcoder(
        d_in=32, d_out=32, n_latents=32, sparsity_params={"k": 4}
    ),
    "l1_decnorm": lambda: sparseae.SAE(
        d_in=64, n_latents=32, sparsity="l1_decnorm", sparsity_params={"weight": 1e-3}
    ),
    "lp": lambda: sparseae.SAE(d_in=64, n_latents=32, sparsity="lp", sparsity_params=LP),
}
CONFIGS = {
    "gated": CONFIG.replace(sparsity_warmup=6),  # the gate's weight warms up like a penalty's
    "l1_decnorm": CONFIG.replace(unit_norm_decoder=False),
    "lp": CONFIG.replace(sparsity_warmup=8),
}
#: kinds whose loss is a per-sample mean, so DDP equals one process (BatchTopK is per rank)
PER_SAMPLE = ("gated", "transcoder", "l1_decnorm", "lp")


def data() -> torch.Tensor:
    return digits(320)[0]  # 10 steps of 32 per epoch; a transcoder reads 32 pixels -> 32


def make(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return KINDS[kind]()


def config(kind: str) -> sparseae.TrainConfig:
    return CONFIGS.get(kind, CONFIG)


class Crash(sparseae.Callback):
    def on_step_end(self, trainer, out):
        if trainer.global_step == 17:  # mid-epoch 2, two steps after the step-15 checkpoint
            raise KeyboardInterrupt


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path, kind):
    x, cfg, ckpt = data(), config(kind), tmp_path / "ckpt"
    straight = make(kind)
    Trainer(straight, cfg, progress=False).fit(x)
    crashed = make(kind)
    trainer = Trainer(crashed, cfg, checkpoint_dir=ckpt, checkpoint_every=5,
                      callbacks=[Crash()], progress=False)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(x)
    resumed = make(kind)
    trainer = Trainer(resumed, cfg, checkpoint_dir=ckpt, checkpoint_every=5, progress=False)
    trainer.fit(x, resume=True)
    assert trainer.resumed_at == 15
    assert_same_state(straight, resumed)
    assert not torch.equal(straight.W_dec, make(kind).W_dec)  # it trained
    if kind == "lp":  # the rescaling ran, and the run ended at p_end's neighbour stages
        assert float(straight.sparsity.scale) != 1.0
        assert straight.sparsity.current_p == pytest.approx(1.0 - 4 / 5 * 0.7)


CLI = {
    "matryoshka": ["--model", "matryoshka-sae", "--widths", "8,16", "--k", "4"],
    "gated": ["--model", "gated-sae", "--weight", "1e-3", "--sparsity-warmup", "5"],
    "transcoder": ["--model", "transcoder", "--d-out", "32", "--k", "4", "--scale", "none"],
    "l1_decnorm": ["--model", "sae", "--sparsity", "l1_decnorm", "--weight", "1e-3",
                   "--free-decoder-norm"],
    # p annealed every step (the CLI's default schedule), rescaled at every step
    "lp": ["--model", "sae", "--sparsity", "lp", "--weight", "2e-3", "--p-end", "0.3",
           "--anneal-steps", "25", "--sparsity-warmup", "5"],
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(CLI))
def test_cli_resume_matches_the_uninterrupted_run(tmp_path, kind):
    rows = tmp_path / "rows.npy"
    np.save(rows, data().numpy())

    def train(out: Path, *extra: str) -> None:
        args = ["train", "--dataset", str(rows), "--n-latents", "32", *CLI[kind],
                "--batch-size", "32", "--seed", "1", "--device", "cpu", "--threads", "1",
                "--checkpoint-every", "4", "--no-progress", "--out", str(out), *extra]  # fmt: skip
        assert main(args) == 0

    train(tmp_path / "straight", "--epochs", "3")
    train(tmp_path / "resumed", "--epochs", "1")
    train(tmp_path / "resumed", "--epochs", "3", "--resume", "--allow-change", "epochs")
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed next to python")
def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(TORCHRUN), "--nproc_per_node=2", "--standalone",
         str(ROOT / "tests" / "ddp_arch_worker.py"), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    for kind in KINDS:
        model = make(kind)
        Trainer(model, config(kind), progress=False).fit(data())
        names = [f"{kind}.{n}" for n, _ in model.named_parameters()]
        if kind == "lp":
            names.append("lp.sparsity.scale")
        for name in names:
            assert torch.equal(ranks[0][name], ranks[1][name]), name
        if kind in PER_SAMPLE:
            for n, v in model.state_dict().items():
                if f"{kind}.{n}" in names:
                    torch.testing.assert_close(ranks[0][f"{kind}.{n}"], v, rtol=0, atol=1e-5,
                                               msg=f"{kind}.{n}")  # fmt: skip
