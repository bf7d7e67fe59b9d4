"""``sparseae train``: train one autoencoder on one dataset and write its run folder."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from sparseae.cli import options


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train one autoencoder and save it",
        description=(
            "Train one (sparse) autoencoder and write its run folder: config.json, "
            "model.safetensors, history.jsonl. Example, document 003's KL sparse AE:\n"
            "  sparseae train --dataset fashion-mnist --hidden 100,300 --activation gelu "
            "--sparsity kl --rho 0.1 --beta 0.05 --penalty-scale keras --loss bce "
            "--epochs 10 --batch-size 32 --out runs/kl\n"
            "Convolutional / recurrent / tied / denoising / greedy layer-wise variants:\n"
            "  --backbone conv [--conv-channels 16,32,64]   (code: the last feature map)\n"
            "  --backbone lstm --hidden 100,30              (image rows as a sequence)\n"
            "  --tied   --corruption dropout --corruption-p 0.5   --layerwise"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_data_options(p)
    options.add_model_options(p)
    options.add_train_options(p)
    lw = p.add_argument_group("greedy layer-wise pre-training (mlp)")
    lw.add_argument(
        "--layerwise",
        action="store_true",
        help="first train one shallow AE per --hidden layer on the previous layer's codes, "
        "stack them, then fine-tune the stack end to end for --epochs",
    )
    lw.add_argument(
        "--layerwise-epochs",
        type=options.positive_int,
        default=None,
        help="epochs per shallow layer (default: --epochs)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", default="runs/train", help="run folder (default: runs/train)")
    out.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its last checkpoint",
    )
    out.add_argument(
        "--checkpoint-every",
        type=options.positive_int,
        default=None,
        help="also checkpoint every N steps (default: every epoch)",
    )
    p.set_defaults(run=run)


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']:>3}/{epochs}", f"loss {record['loss']:.4f}"]
    if "val_recon" in record:
        parts.append(f"val_recon {record['val_recon']:.4f}")
        parts.append(f"L0 {record['val_l0']:.1f}")
        parts.append(f"dead {record['val_dead_latents']}")
    parts.append(f"{record['seconds']:.2f}s")
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    import torch

    from sparseae.checkpoint import save
    from sparseae.models.autoencoder.model import Autoencoder
    from sparseae.training.distributed import init_from_env, is_main_process
    from sparseae.training.trainer import Trainer, evaluate

    init_from_env(args.device)  # joins torchrun's process group; no-op for one process
    if not is_main_process():  # rank 0 alone prints and writes
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    data = options.load_data(args)
    train_cfg = options.train_config_from_args(args)
    model_cfg = options.model_config_from_args(
        args, data.d_in, input_shape=data.image_shape, data_scale=data.scale
    )
    torch.manual_seed(args.seed)
    if args.layerwise:
        from sparseae.training.greedy import train_layerwise

        val_x = data.val.x if len(data.val) else None
        model = train_layerwise(
            model_cfg,
            data.train.x,
            val_x,
            train_config=train_cfg.replace(epochs=args.layerwise_epochs or train_cfg.epochs),
            log=lambda r: print(
                f"layer  {r['layer']} ({r['sizes'][0]}->{r['sizes'][1]}) pre-trained: loss "
                f"{r['loss']:.4f}" + (f", val {r['val_recon']:.4f}" if "val_recon" in r else ""),
                flush=True,
            ),
        )
    else:
        model = Autoencoder(model_cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"data   {data.name}: train {len(data.train)}, val {len(data.val)}, "
        f"test {len(data.test)}, {data.d_in} features"
    )
    print(f"model  {model.describe()} ({n_params:,} parameters)")
    out = Path(args.out)
    trainer = Trainer(
        model,
        train_cfg,
        checkpoint_dir=out,
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
        log=lambda r: print(_epoch_line(r, train_cfg.epochs), flush=True),
    )
    t0 = time.perf_counter()
    val = data.val.x if len(data.val) else None
    trainer.fit(data.train.x, val, resume=args.resume)
    wall = time.perf_counter() - t0
    if trainer.resumed_at is not None:
        print(f"resumed from the checkpoint at step {trainer.resumed_at}")
    summary: dict[str, Any] = {"split": "test"}
    if len(data.test):
        summary.update(evaluate(model, data.test.x, device=trainer.device))
    if not is_main_process():
        return 0
    save(
        model,
        out,
        history=trainer.history.records,
        train_config=train_cfg.to_dict(),
        extra={"dataset": data.name, "test": summary, "wall_seconds": wall},
    )
    cols = ["split", "recon", "loss", "l0", "frac_inactive", "dead_latents"]
    rows = []
    if trainer.history.last.get("val_recon") is not None:
        last = trainer.history.last
        rows.append({"split": "val", **{c: last.get(f"val_{c}") for c in cols[1:]}})
    if len(data.test):
        rows.append(summary)
    if rows:
        print()
        print(options.format_table(rows, cols))
    print(
        f"\nsaved to {out}/ ({wall:.1f}s, {trainer.train_seconds / max(1, trainer.epoch):.2f}s "
        "per epoch of training)",
        file=sys.stdout,
    )
    return 0
