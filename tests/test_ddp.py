"""Data-parallel training: 2 gloo processes on CPU reach the weights one process reaches.

"Same" here means: ``batch_size`` is the global batch; each of the 2 ranks takes one half of
every global batch (same shuffle), DDP averages the two half-batch gradients, which equals the
full-batch gradient of one process because the loss is a mean over samples (MSE + top-k).
So weights agree up to floating-point reordering of the sums (atol 1e-5 after 2 epochs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import sparseae
from sparseae.data.shards import write_shards
from sparseae.training.trainer import Trainer

from .helpers import digits

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
CONFIG = sparseae.TrainConfig(epochs=2, batch_size=64, seed=3, lr=3e-3, device="cpu")
RESUME_CONFIG = CONFIG.replace(epochs=3, lr_schedule="cosine")


def data() -> torch.Tensor:
    return digits(512)[0]  # 8 global batches of 64: every rank gets 32 rows per step


def make_model(**kwargs) -> sparseae.Autoencoder:
    torch.manual_seed(0)
    return sparseae.Autoencoder(
        d_in=64,
        n_latents=32,
        sparsity="topk",
        sparsity_params={"k": 6},
        code_activation="linear",
        output_activation="linear",
        **kwargs,
    )


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed next to python")
def test_two_gloo_processes_match_one_process_and_resume_exactly(tmp_path):
    shard_dir = tmp_path / "shards"
    write_shards(shard_dir, data(), rows_per_shard=100)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(TORCHRUN),
            "--nproc_per_node=2",
            "--standalone",
            str(ROOT / "tests" / "ddp_worker.py"),
            str(tmp_path),
            str(shard_dir),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank0 logged epoch 2" in proc.stdout and "rank1 logged" not in proc.stdout
    got = load_file(str(tmp_path / "weights.safetensors"))
    histories = json.loads((tmp_path / "histories.json").read_text())

    for name, train_data in (("memory", data()), ("stream", str(shard_dir))):
        model = make_model()
        h = Trainer(model, CONFIG, progress=False).fit(train_data)
        for k, v in model.state_dict().items():
            torch.testing.assert_close(got[f"{name}.{k}"], v, rtol=0, atol=1e-5, msg=k)
        assert histories[name] == pytest.approx(h["loss"], rel=1e-5)
    # the weights moved: agreement is not just two copies of the initialisation
    assert not torch.allclose(
        got["memory.backbone.enc_weights.0"], make_model().state_dict()["backbone.enc_weights.0"]
    )

    # killed mid-epoch under DDP and resumed: bit-identical to the uninterrupted DDP run
    for k in make_model().state_dict():
        assert torch.equal(got[f"straight.{k}"], got[f"resumed.{k}"]), k


CLI_MODELS = {
    "autoencoder": ["--hidden", "32", "--sparsity", "topk", "--k", "6"],
    # the dictionary SAE with every trick that keeps state across ranks: unit-norm atoms,
    # b_dec at the geometric median, dead latents counted over the global batch, AuxK
    # normalised by the global residual energy
    "sae": ["--model", "sae", "--n-latents", "96", "--sparsity", "topk", "--k", "4",
            "--dead-after", "64", "--aux-k", "8"],
}  # fmt: skip


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed next to python")
@pytest.mark.parametrize("model", sorted(CLI_MODELS))
def test_torchrun_cli_on_a_shard_folder_matches_one_process_and_only_rank0_writes(tmp_path, model):
    from sparseae.cli import main

    shard_dir = tmp_path / "shards"
    write_shards(shard_dir, data(), rows_per_shard=128, metadata={"name": "digits-shards"})
    args = ["train", "--dataset", str(shard_dir), *CLI_MODELS[model], "--epochs", "2",
            "--batch-size", "64", "--device", "cpu", "--no-progress", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(TORCHRUN), "--nproc_per_node=2", "--standalone", "-m", "sparseae", *args,
         "--out", str(tmp_path / "ddp")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("epoch   2/2") == 1  # rank 1 prints nothing
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=k)
    history = sparseae.read_history(tmp_path / "one")
    assert history[-1]["recon"] < history[0]["recon"]  # it trained
    if model == "sae":
        assert history[-1]["aux"] > 0 and history[-1]["dead_tracked"] > 0  # AuxK at work
        assert sparseae.read_history(tmp_path / "ddp")[-1]["aux"] == pytest.approx(
            history[-1]["aux"], rel=1e-4
        )
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )
