"""``sparseae detect``: fit on normal data, score new data, write scores and flags."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.cli import options

#: what detect trains when no --sparsity is given: a lightly L1-penalised code
DEFAULT_SPARSITY = "l1"
DEFAULT_L1_WEIGHT = 1e-4


def _set_help(parser: argparse.ArgumentParser, dest: str, text: str) -> None:
    """Reword a shared option's help where this command's default differs from train's."""
    for action in parser._actions:
        if action.dest == dest:
            action.help = text


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "detect",
        help="anomaly detection by reconstruction error (CSV of scores)",
        description="Train an autoencoder on normal data (the training split, "
        "or only its --normal-class), score the test split by reconstruction "
        "error and flag anomalies above a threshold taken from the training "
        "errors: the --contamination quantile, or mean + --n-std x std.",
    )
    options.add_data_options(p)
    p.add_argument("--model", default=None, help="use this saved model instead of training")
    p.add_argument(
        "--normal-class",
        type=int,
        default=None,
        help="train on this class only; the AUROC of 'not this class' is printed",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--contamination",
        type=float,
        default=None,
        help="expected outlier fraction in training data (default 0.05)",
    )
    g.add_argument(
        "--n-std",
        type=options.positive_float,
        default=None,
        help="threshold = mean + N x std of training errors (document 002)",
    )
    p.add_argument(
        "--hidden",
        type=options.int_list,
        default=(64, 16),
        help="encoder sizes, the last is the code (default: 64,16)",
    )
    p.add_argument("--epochs", type=options.positive_int, default=20)
    p.add_argument("--batch-size", type=options.positive_int, default=64)
    options.add_sparsity_options(p)  # train's flags: one spelling, checked per mechanism
    _set_help(p, "sparsity", f"mechanism (default: {DEFAULT_SPARSITY}, weight 1e-4)")
    options.add_code_activation_option(p)
    p.add_argument("--seed", type=options.nonnegative_int, default=0)
    p.add_argument("--out", required=True, help="CSV file: index, score, is_anomaly[, label]")
    p.set_defaults(run=run)


def _build_model(args: argparse.Namespace, data: Any) -> Any:
    """A fresh autoencoder from the flags (the sparsity's parameters through train's
    `sparsity_params_from_args`, so a flag the mechanism does not take is an error)."""
    import torch

    from sparseae.models.autoencoder.model import Autoencoder

    sparsity = args.sparsity or DEFAULT_SPARSITY
    params = options.sparsity_params_from_args(args, sparsity)
    if sparsity == "l1":
        params.setdefault("weight", DEFAULT_L1_WEIGHT)
    *inner, code = args.hidden
    torch.manual_seed(args.seed)
    return Autoencoder(
        d_in=data.d_in,
        hidden=tuple(inner),
        n_latents=code,
        code_activation=args.code_activation or options.default_code_activation(sparsity),
        sparsity=sparsity,
        sparsity_params=params,
        output_activation="sigmoid" if data.scale in ("unit", "minmax") else "linear",
    )


def run(args: argparse.Namespace) -> int:
    from sparseae.apps.anomaly import auroc, reconstruction_errors, threshold_from_errors
    from sparseae.checkpoint import load
    from sparseae.cli.encode import check_features
    from sparseae.errors import ConfigError
    from sparseae.training.trainer import fit

    if args.contamination is not None and not 0 < args.contamination < 0.5:
        raise ConfigError(f"--contamination must lie in (0, 0.5), got {args.contamination}")
    saved = load(args.model) if args.model else None
    data = (
        options.load_data_for_model(args, saved) if saved is not None else options.load_data(args)
    )
    train_x = data.train.x
    if args.normal_class is not None:
        if data.train.y is None:
            raise ConfigError("--normal-class needs a labelled dataset")
        classes = sorted(set(int(c) for c in np.unique(data.train.y)))
        if args.normal_class not in classes:
            raise ConfigError(
                f"--normal-class {args.normal_class} is not a class of "
                f"{data.name}: choose one of {', '.join(map(str, classes))}"
            )
        train_x = train_x[data.train.y == args.normal_class]
    if saved is not None:
        model = saved
        check_features(model, data)
    else:
        model = _build_model(args, data)
        fit(
            model,
            train_x,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=False,
        )
    train_err = reconstruction_errors(model, train_x)
    if args.n_std is not None:
        threshold = threshold_from_errors(train_err, n_std=args.n_std)
    else:
        threshold = threshold_from_errors(train_err, contamination=args.contamination or 0.05)
    test = data.test if len(data.test) else data.val
    scores = reconstruction_errors(model, test.x)
    flags = scores > threshold
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "score", "is_anomaly"] + (["label"] if test.y is not None else []))
        for i, (s, f) in enumerate(zip(scores, flags, strict=True)):
            row = [i, f"{s:.6g}", int(f)] + ([int(test.y[i])] if test.y is not None else [])
            w.writerow(row)
    print(
        f"threshold {threshold:.5g}; flagged {int(flags.sum())} of {len(scores)} test samples;"
        f" wrote {out}"
    )
    if args.normal_class is not None and test.y is not None:
        print(
            f"AUROC (anomaly = not class {args.normal_class}): "
            f"{auroc(scores, test.y != args.normal_class):.4f}"
        )
    return 0
