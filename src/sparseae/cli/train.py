"""``sparseae train``: train one model of any kind on any data source and write its run
folder (config.json, model.safetensors, history.jsonl, trainer_state.safetensors)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from sparseae.cli import options

MODELS = ("autoencoder", "sae", "matryoshka-sae", "gated-sae", "transcoder", "sparse-coding")
from sparseae.training.config import RESUMABLE_CHANGES as RESUMABLE  # noqa: E402

EXAMPLES = """\
examples:
  KL sparse AE (Ng's notes, as a Keras recipe: weight 0.05 at batch 32):
    sparseae train --dataset digits --hidden 32 --n-latents 64 --activation gelu \\
      --sparsity kl --rho 0.1 --weight 0.05 --penalty-scale keras --loss bce --out runs/kl
  TopK dictionary (SAE) on activation shards, AuxK on dead latents, k warm-up:
    sparseae train --model sae --dataset acts/ --n-latents 3072 --sparsity topk --k 32 \\
      --dead-after 100000 --aux-k 256 --sparsity-warmup 1000 --normalize --out runs/sae
  Matryoshka BatchTopK: --model matryoshka-sae --n-latents 1024 --widths 64,256 --k 16
  Gated SAE (Rajamanoharan et al. 2024): --model gated-sae --n-latents 1024 --weight 1e-3
  Transcoder on paired rows [input | output]: --model transcoder --d-out 384 --n-latents 3072
  Arora et al.'s neural sparse coding: sparseae train --model sparse-coding --n-latents 256 --k 10
  Convolutional / recurrent / tied / denoising / greedy layer-wise autoencoders:
    --backbone conv [--conv-channels 16,32,64]   --backbone lstm --hidden 100 --n-latents 30
    --tied   --corruption dropout --corruption-p 0.5   --layerwise
  Data parallel: torchrun --nproc_per_node=2 -m sparseae train ...
"""


def add_parser(sub: Any, name: str = "train", model: str = "autoencoder") -> None:
    p = sub.add_parser(
        name,
        help="train one model (autoencoder, SAE dictionary, sparse coding) and save it"
        if name == "train"
        else "alias of 'train --model sae'",
        description=__doc__.split("\n", 1)[0].strip("`") + "\n\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", choices=MODELS, default=model, help=f"default: {model}")
    options.add_data_options(p)
    options.add_model_options(p)
    g = p.add_argument_group("dictionary models (sae, sparse-coding)")
    g.add_argument(
        "--normalize",
        action="store_true",
        help="sae: scale inputs to E||x||^2 = d_in (SAELens); the model keeps the scale",
    )
    g.add_argument(
        "--coding-lr", type=options.positive_float, default=0.05, help="sparse coding eta (0.05)"
    )
    g.add_argument(
        "--d-out",
        type=options.positive_int,
        default=None,
        help="transcoder: the output width; each row is the layer's input then its output "
        "(extract_activations(..., pair=True))",
    )
    g.add_argument("--skip", action="store_true", help="transcoder: add a linear skip connection")
    g.add_argument(
        "--bf16-screen",
        action="store_true",
        help="sae with --sparsity topk: choose each row's support from a bf16 encoder product "
        "and recompute the kept values in fp32 (the fp32 step's support and values; a "
        "1.3-1.7x faster step at 16,384-65,536 latents, with or without AuxK, "
        "where bf16 products are fast: AVX512-BF16 or AMX CPUs, GPUs; slower elsewhere)",
    )
    g.add_argument(
        "--widths",
        type=options.int_list,
        default=None,
        help="matryoshka-sae: the inner prefix sizes, increasing, below --n-latents (e.g. 64,256)",
    )
    options.add_train_options(p)
    lw = p.add_argument_group("greedy layer-wise pre-training (mlp autoencoder)")
    lw.add_argument(
        "--layerwise",
        action="store_true",
        help="first train one shallow AE per hidden layer on the previous layer's codes, "
        "stack them, then fine-tune the stack end to end for --epochs",
    )
    lw.add_argument(
        "--layerwise-epochs",
        type=options.positive_int,
        default=None,
        help="epochs per shallow layer (default: --epochs)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", default=f"runs/{name}", help=f"run folder (default: runs/{name})")
    out.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out from its last checkpoint",
    )
    out.add_argument(
        "--allow-change",
        action="append",
        default=[],
        choices=RESUMABLE,
        metavar="SETTING",
        help="with --resume: let this setting differ from the saved run "
        f"({', '.join(RESUMABLE)}; repeatable)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out instead of refusing to",
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
    if "dead_tracked" in record:
        parts.append(f"dead(tracked) {record['dead_tracked']}")
    parts.append(f"{record['seconds']:.2f}s")
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    from sparseae.training.distributed import init_from_env, is_main_process
    from sparseae.training.run_folder import RunFolder

    init_from_env(args.device)  # joins torchrun's process group; no-op for one process
    if not is_main_process():  # rank 0 alone prints and writes
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    train_cfg = options.train_config_from_args(args)
    # the output is checked and locked before any data is read or a step is trained
    with RunFolder(args.out, resume=args.resume, overwrite=args.overwrite, lock=is_main_process()):
        return _train(args, train_cfg)


def _train(args: argparse.Namespace, train_cfg: Any) -> int:
    from sparseae.cli.train_setup import build_model, normalized_inputs
    from sparseae.training.trainer import Trainer

    data = options.load_data(args)
    model = build_model(args, data, train_cfg)
    x_train, x_val, to_model = normalized_inputs(args, model, data)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"data   {data.name}: train {len(data.train)}, val {len(data.val)}, "
        f"test {len(data.test)}, {data.d_in} features"
    )
    print(f"model  {model.describe()} ({n_params:,} parameters)")
    trainer = Trainer(
        model,
        train_cfg,
        checkpoint_dir=Path(args.out),
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
        log=lambda r: print(_epoch_line(r, train_cfg.epochs), flush=True),
    )
    t0 = time.perf_counter()
    trainer.fit(x_train, x_val, resume=args.resume, allow_changes=tuple(args.allow_change))
    if trainer.resumed_at is not None:
        print(f"resumed from the checkpoint at step {trainer.resumed_at}")
    return _finish(args, model, data, trainer, time.perf_counter() - t0, to_model)


def _finish(
    args: argparse.Namespace, model: Any, data: Any, trainer: Any, wall: float, to_model: Any
) -> int:
    from sparseae.checkpoint import save
    from sparseae.cli.train_setup import final_metrics

    summary = final_metrics(model, data, to_model)
    if trainer.rank != 0:
        return 0
    out = Path(args.out)
    firing = summary.pop("firing", None)
    save(
        model,
        out,
        history=trainer.history.records,
        train_config=trainer.config.to_dict(),
        extra={"dataset": data.name, "test": summary, "wall_seconds": wall},
    )
    cols = ["split", "recon", "loss", "l0", "frac_inactive", "dead_latents"]
    if "fve" in summary:
        cols += ["fve"]
    rows = []
    if trainer.history.last.get("val_recon") is not None:
        last = trainer.history.last
        rows.append({"split": "val", **{c: last.get(f"val_{c}") for c in cols[1:]}})
    if summary:
        rows.append(summary)
    if rows:
        print()
        print(options.format_table(rows, cols))
    if firing is not None:
        from sparseae.report.figures import firing_frequency_histogram

        firing_frequency_histogram(firing, out / "firing.png")
        print(f"firing frequencies: {out / 'firing.png'}")
    per_epoch = trainer.train_seconds / max(1, trainer.epoch)
    print(f"\nsaved to {out}/ ({wall:.1f}s, {per_epoch:.2f}s per epoch of training)")
    return 0
