"""``sparseae train-sae``: learn a sparse dictionary (`SAE`) on activation vectors.

Example, 4x overcomplete BatchTopK dictionary on activations saved as a .npy file:
  sparseae train-sae --dataset acts.npy --scale none --n-latents 3072 --sparsity batchtopk
  --k 32 --dead-after 100000 --aux-k 256 --normalize --epochs 5 --batch-size 1024 --out runs/sae
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sparseae.cli import options
from sparseae.errors import ConfigError
from sparseae.sparsities.base import sparsity_names


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train-sae",
        help="learn a sparse dictionary (TopK/BatchTopK/JumpReLU SAE) on activations",
        description=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_data_options(p)
    options.add_train_options(p)
    g = p.add_argument_group("dictionary")
    g.add_argument("--n-latents", type=options.positive_int, required=True, help="dictionary size")
    g.add_argument(
        "--sparsity",
        choices=[s for s in sparsity_names() if s != "none"],
        default="topk",
        help="default: topk",
    )
    g.add_argument("--k", type=options.positive_int, default=32, help="topk/batchtopk k (32)")
    g.add_argument(
        "--weight", type=options.nonnegative_float, default=None, help="l1/kl/jumprelu weight"
    )
    g.add_argument("--bandwidth", type=options.positive_float, default=None, help="jumprelu STE ε")
    g.add_argument(
        "--threshold-init", type=options.positive_float, default=None, help="jumprelu initial θ"
    )
    g.add_argument(
        "--dead-after",
        type=options.nonnegative_int,
        default=0,
        help="samples without firing before a latent is dead (0: no tracking)",
    )
    g.add_argument("--aux-k", type=options.nonnegative_int, default=0, help="AuxK latents (0: off)")
    g.add_argument(
        "--b-dec-init",
        choices=("geometric_median", "mean", "zeros"),
        default="geometric_median",
        help="decoder bias initialisation (default: geometric_median)",
    )
    g.add_argument(
        "--normalize",
        action="store_true",
        help="train on x scaled to E||x||^2 = d_in; the scale is folded into the saved weights",
    )
    g.add_argument(
        "--free-decoder-norm", action="store_true", help="do not keep decoder atoms at unit norm"
    )
    g.add_argument(
        "--sparsity-warmup",
        type=options.nonnegative_int,
        default=0,
        help="steps over which k falls from 4k (or the penalty rises from 0) (0: off)",
    )
    g.add_argument("--out", default="runs/sae", help="run folder (default: runs/sae)")
    p.set_defaults(run=run)


def _sparsity_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.sparsity in ("topk", "batchtopk"):
        given = [n for n in ("weight", "bandwidth", "threshold_init") if getattr(args, n)]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} does not apply to {args.sparsity}")
        return {"k": args.k}
    params = {"weight": args.weight}
    if args.sparsity == "jumprelu":
        params |= {"bandwidth": args.bandwidth, "threshold_init": args.threshold_init}
    return {k: v for k, v in params.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    import torch

    from sparseae.checkpoint import save
    from sparseae.metrics import SparsityStats, fraction_variance_explained, normalized_mse
    from sparseae.models.sae.model import SAE, SAEConfig
    from sparseae.training.dictionary import (
        SparsityWarmup,
        UnitNormDecoder,
        fold_input_scale,
        init_decoder_bias,
        input_scale,
    )
    from sparseae.training.trainer import Trainer

    data = options.load_data(args)
    x_train = torch.as_tensor(data.train.x)
    x_val = torch.as_tensor(data.val.x) if len(data.val) else None
    torch.manual_seed(args.seed)
    config = SAEConfig(
        d_in=data.d_in,
        n_latents=args.n_latents,
        sparsity=args.sparsity,
        sparsity_params=_sparsity_params(args),
        dead_after=args.dead_after,
        aux_k=args.aux_k,
    )
    model = SAE(config)
    scale = input_scale(x_train) if args.normalize else 1.0
    x_train = x_train * scale
    x_val = x_val * scale if x_val is not None else None
    init_decoder_bias(model, x_train[:65536], args.b_dec_init)
    callbacks: list[Any] = [] if args.free_decoder_norm else [UnitNormDecoder()]
    if args.sparsity_warmup:
        callbacks.append(SparsityWarmup(args.sparsity_warmup))
    print(
        f"data   {data.name}: train {len(x_train)}, {data.d_in} features, input scale {scale:.4g}"
    )
    print(f"model  {model.describe()}")
    trainer = Trainer(
        model,
        options.train_config_from_args(args),
        callbacks=callbacks,
        progress=False if args.no_progress else None,
    )
    t0 = time.perf_counter()
    trainer.fit(x_train, x_val)
    wall = time.perf_counter() - t0
    fold_input_scale(model, scale)
    model.eval()
    x_eval = torch.as_tensor(data.val.x if len(data.val) else data.train.x)[:65536]
    stats = SparsityStats(model.n_latents)
    with torch.no_grad():
        x_hat = model(x_eval)
        stats.update(model.encode(x_eval))
    s = stats.result()
    result = {
        "normalized_mse": normalized_mse(x_hat, x_eval),
        "fve": fraction_variance_explained(x_hat, x_eval),
        "l0": s["l0"],
        "dead_latents": s["dead_latents"],
        "dense_latents": s["dense_latents"],
    }
    out = Path(args.out)
    save(model, out, history=trainer.history.records, extra={"eval": result, "wall_s": wall})
    split = "val" if len(data.val) else "train"
    print(
        f"{split}: normalized MSE {result['normalized_mse']:.4f} (÷ variance of x)  FVE "
        f"{result['fve']:.4f}  L0 {result['l0']:.1f}  dead {result['dead_latents']}  dense "
        f"{result['dense_latents']} (>10% firing)"
    )
    print(f"saved to {out}/ ({wall:.1f}s)")
    return 0
