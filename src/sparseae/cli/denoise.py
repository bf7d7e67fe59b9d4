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
        "(sigma, clipped to [0, 1]; 0.4 is the 'noise factor' of the usual Keras denoising "
        "examples) with the clean input as target, or load one with --model; then denoise "
        "noisy copies of the chosen rows, print PSNR/MSE and write the denoised rows "
        "(denoised.npy, with denoised_rows.npy: each row's 0-based row in the source, and "
        "denoised_splits.npy), a figure and the model.",
    )
    options.add_data_options(p)
    p.add_argument("--model", default=None, help="use this saved model instead of training")
    options.add_split_option(p, "all for a user file with --model, else test (held out)")
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


def _trained_model(args: argparse.Namespace, data: Any, out: Path) -> Any:
    """A fresh denoising autoencoder (Gaussian corruption, BCE) trained on the training split
    and saved under out/model."""
    import torch

    from sparseae.checkpoint import save
    from sparseae.models.autoencoder.model import Autoencoder
    from sparseae.training.trainer import fit

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
    return model


def run(args: argparse.Namespace) -> int:
    from sparseae.apps.denoise import add_gaussian_noise, denoise
    from sparseae.checkpoint import load
    from sparseae.cli.encode import check_features, default_split, save_row_keys
    from sparseae.errors import DataError
    from sparseae.metrics import psnr
    from sparseae.report import figures as viz

    saved = load(args.model) if args.model else None
    data = (
        options.load_data_for_model(args, saved) if saved is not None else options.load_data(args)
    )
    scaled_by_model = saved is not None and saved.input_transform.active
    if data.scale not in ("unit", "minmax") and not scaled_by_model:
        raise DataError("denoise expects data in [0, 1]: use --scale minmax")
    out = Path(args.out)
    which = default_split(args, whole_file=saved is not None)
    split, names = options.select_rows(data, which, explicit=args.split is not None)
    if saved is not None:
        model = saved
        check_features(model, data)
    else:
        model = _trained_model(args, data, out)
    noisy = add_gaussian_noise(split.x, args.sigma, seed=args.seed)
    clean = denoise(model, noisy)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "denoised.npy", clean)
    save_row_keys(out / "denoised.npy", split, names)
    fig = viz.reconstructions(
        split.x[:10],
        clean[:10],
        data.image_shape,
        f"denoising at sigma {args.sigma}",
        rows=("clean", "denoised", "noisy"),
        extra=[noisy[:10]],
    )
    viz.save_png(fig, out / "denoising.png")
    p_noisy, p_clean = psnr(split.x, noisy), psnr(split.x, clean)
    mse_noisy = float(((noisy - split.x) ** 2).mean())
    mse_clean = float(((clean - split.x) ** 2).mean())
    print(
        f"PSNR noisy {p_noisy:.2f} dB -> denoised {p_clean:.2f} dB on {len(split)} {which} "
        f"rows; MSE {mse_noisy:.4f} -> {mse_clean:.4f}"
    )
    print(f"wrote {out}/denoised.npy (+ _rows, _splits), {out}/denoising.png")
    return 0
