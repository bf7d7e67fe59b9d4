"""Run by tests/test_ddp.py under ``torchrun --nproc_per_node=2``: trains the tiny problems of
that test with DistributedDataParallel (gloo, CPU) and lets rank 0 save what it got."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import sparseae
from sparseae.training import distributed
from sparseae.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_ddp import CONFIG, RESUME_CONFIG, data, make_model  # noqa: E402


class Crash(sparseae.Callback):
    def on_step_end(self, trainer, out):
        if trainer.global_step == 11:  # mid-epoch 2, after the step-10 checkpoint
            raise KeyboardInterrupt


def main(out: Path, shard_dir: str) -> None:
    rank, world = distributed.init_from_env("cpu")
    assert world == 2
    x = data()
    results, histories = {}, {}

    def log(record):
        print(f"rank{rank} logged epoch {record['epoch']}", flush=True)

    for name, train_data in (("memory", x), ("stream", shard_dir)):
        model = make_model()
        h = Trainer(model, CONFIG, progress=False, log=log).fit(train_data)
        results.update({f"{name}.{k}": v for k, v in model.state_dict().items()})
        histories[name] = h["loss"]

    # resume under DDP: per-rank corruption noise and data position restored exactly
    ckpt = out / "ckpt"
    straight = make_model(corruption="dropout", corruption_params={"p": 0.2})
    Trainer(straight, RESUME_CONFIG, progress=False).fit(x)
    crashed = make_model(corruption="dropout", corruption_params={"p": 0.2})
    try:
        Trainer(
            crashed,
            RESUME_CONFIG,
            checkpoint_dir=ckpt,
            checkpoint_every=5,
            callbacks=[Crash()],
            progress=False,
        ).fit(x)
    except KeyboardInterrupt:
        pass
    torch.distributed.barrier()
    resumed = make_model(corruption="dropout", corruption_params={"p": 0.2})
    Trainer(resumed, RESUME_CONFIG, checkpoint_dir=ckpt, checkpoint_every=5, progress=False).fit(
        x, resume=True
    )
    results.update({f"straight.{k}": v for k, v in straight.state_dict().items()})
    results.update({f"resumed.{k}": v for k, v in resumed.state_dict().items()})
    if rank == 0:
        save_file({k: v.contiguous() for k, v in results.items()}, str(out / "weights.safetensors"))
        (out / "histories.json").write_text(json.dumps(histories))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
