"""``sparseae denoise``: train (or load) a denoising autoencoder and clean noisy images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.cli import options


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "denoise",
        help="denoising autoencoder: PSNR of noisy vs denoised images",
        description="Train an autoencoder on inputs corrupted by Gaussian noise "
        "(sigma, clipped to [0, 1]; document 002 uses 0.4) with the clean input "
        "as target, or load one with --model; then denoise noisy test images, "
        "print PSNR/MSE and write the denoised images (.npy), a figure and the "
        "model.",
    )
    options.add_data_options(p)
    p.add_argument("--model", default=None, help="use this saved model instead of training")
    p.add_argument(
        "--sigma",
        type=options.nonnegative_float,
        default=0.4,
        help="Gaussian noise sigma (default: 0.4)",
    )
    p.add_argument(
        "--hidden",
        type=options.int_list,
        default=(256, 128),
        help="encoder sizes, the last is the code (default: 256,128)",
    )
    p.add_argument("--epochs", type=options.positive_int, default=10)
    p.add_argument("--batch-size", type=options.positive_int, default=128)
    p.add_argument("--seed", type=options.nonnegative_int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sparseae.apps.denoise import add_gaussian_noise, denoise
    from sparseae.checkpoint import load, save
    from sparseae.cli.encode import check_features
    from sparseae.errors import DataError
    from sparseae.metrics import psnr
    from sparseae.models.autoencoder.model import Autoencoder
    from sparseae.report import figures as viz
    from sparseae.training.trainer import fit

    saved = load(args.model) if args.model else None
    data = (
        options.load_data_for_model(args, saved) if saved is not None else options.load_data(args)
    )
    scaled_by_model = saved is not None and saved.input_transform.active
    if data.scale not in ("unit", "minmax") and not scaled_by_model:
        raise DataError("denoise expects data in [0, 1]: use --scale minmax")
    out = Path(args.out)
    if saved is not None:
        model = saved
        check_features(model, data)
    else:
        *inner, code = args.hidden
        torch.manual_seed(args.seed)
        model = Autoencoder(
            d_in=data.d_in,
            hidden=tuple(inner),
            n_latents=code,
            loss="bce",
            corruption="gaussian",
            corruption_params={"sigma": args.sigma},
        )
        fit(
            model,
            data.train.x,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=False if args.no_progress else None,
        )
        save(model, out / "model")
    test = data.test if len(data.test) else data.val
    noisy = add_gaussian_noise(test.x, args.sigma, seed=args.seed)
    clean = denoise(model, noisy)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "denoised.npy", clean)
    fig = viz.reconstructions(
        test.x[:10],
        clean[:10],
        data.image_shape,
        f"denoising at sigma {args.sigma}",
        rows=("clean", "denoised", "noisy"),
        extra=[noisy[:10]],
    )
    viz.save_png(fig, out / "denoising.png")
    p_noisy, p_clean = psnr(test.x, noisy), psnr(test.x, clean)
    mse_noisy = float(((noisy - test.x) ** 2).mean())
    mse_clean = float(((clean - test.x) ** 2).mean())
    print(
        f"PSNR noisy {p_noisy:.2f} dB -> denoised {p_clean:.2f} dB; "
        f"MSE {mse_noisy:.4f} -> {mse_clean:.4f}"
    )
    print(f"wrote {out}/denoised.npy, {out}/denoising.png")
    return 0
