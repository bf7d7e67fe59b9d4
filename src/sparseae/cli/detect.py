"""``sparseae detect``: fit on normal data, score new data, write scores and flags."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.catalog import sparsity_names
from sparseae.cli import options
from sparseae.errors import ConfigError

#: what detect trains when no --sparsity is given: a lightly L1-penalised code
DEFAULT_SPARSITY = "l1"
DEFAULT_L1_WEIGHT = 1e-4


def _set_help(parser: argparse.ArgumentParser, dest: str, text: str) -> None:
    """Reword a shared option's help where this command's default differs from train's."""
    for action in parser._actions:
        if action.dest == dest:
            action.help = text


def default_k(n_latents: int) -> int:
    """k for topk/batchtopk when --k is not given: half the code, at most train's 32, so the
    code stays sparse whatever --hidden is (train's fixed 32 exceeds detect's 16 latents)."""
    return min(32, max(1, n_latents // 2))


def _add_score_options(p: argparse.ArgumentParser) -> None:
    """--score and --neighbors: which anomaly score, and its kNN parts' neighbours."""
    p.add_argument(
        "--score",
        choices=("combined", "reconstruction"),
        default="combined",
        help="combined (default): the sum of five standardised parts, squared and cosine "
        "reconstruction errors, the code's kNN and Mahalanobis distances to the normal rows' "
        "codes, the input's cosine kNN distance to the normal rows (SparseAEDetector's "
        "score); reconstruction: the mean squared reconstruction error",
    )
    p.add_argument(
        "--neighbors",
        type=options.positive_int,
        default=5,
        help="neighbours of the combined score's kNN parts (default 5)",
    )


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "detect",
        help="anomaly detection (CSV of scores)",
        description="Train an autoencoder on normal data (the training split, "
        "or only its --normal-class), or load one with --model; score rows (every row of a "
        "user file in file order by default) by the combined score of SparseAEDetector or by "
        "reconstruction error (--score), and flag anomalies above a threshold taken from the "
        "training rows' scores: the --contamination quantile, or the mean + k*std rule "
        "(--n-std k). The CSV is keyed by the source's 0-based row numbers.",
    )
    options.add_data_options(p)
    p.add_argument("--model", default=None, help="use this saved model instead of training")
    options.add_split_option(
        p,
        "all for a user file (a model trained here learns from the train split only; the "
        "CSV's split column says which rows); test for a named dataset or with "
        "--normal-class (held out)",
    )
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
        help="threshold = mean + N x std of the training errors (the mean + k*std rule)",
    )
    _add_score_options(p)
    p.add_argument(
        "--hidden",
        type=options.int_list,
        default=(64, 16),
        help="encoder sizes, the last is the code (default: 64,16)",
    )
    p.add_argument("--epochs", type=options.positive_int, default=20)
    p.add_argument("--batch-size", type=options.positive_int, default=64)
    options.add_sparsity_options(p)  # train's flags: one spelling, checked per mechanism
    _set_help(
        p,
        "sparsity",
        f"mechanism: {', '.join(sparsity_names())} (default: {DEFAULT_SPARSITY}, weight 1e-4)",
    )
    _set_help(p, "k", "topk/batchtopk: active latents per input (default: min(32, code size // 2))")
    _set_help(p, "weight", "l1/kl/jumprelu penalty weight (here l1 1e-4, kl 0.1, jumprelu 1e-3)")
    options.add_code_activation_option(p)
    p.add_argument("--seed", type=options.nonnegative_int, default=0)
    p.add_argument(
        "--out",
        required=True,
        help="CSV file: row (0-based row in the source), split, score, is_anomaly[, label]",
    )
    p.set_defaults(run=run)


def _sparsity_params(args: argparse.Namespace, sparsity: str, n_latents: int) -> dict[str, Any]:
    """Train's `sparsity_params_from_args` (a flag the mechanism does not take is an error)
    plus detect's defaults: a light L1 weight, and a k that fits the code."""
    params = options.sparsity_params_from_args(args, sparsity)
    if sparsity == "l1":
        params.setdefault("weight", DEFAULT_L1_WEIGHT)
    if sparsity in ("topk", "batchtopk"):
        params.setdefault("k", default_k(n_latents))
        if params["k"] > n_latents:
            raise ConfigError(
                f"--k {params['k']} exceeds the code size {n_latents} (the last --hidden "
                "size): lower --k or raise --hidden"
            )
    return params


def _build_model(args: argparse.Namespace, data: Any) -> Any:
    """A fresh autoencoder from the flags."""
    import torch

    from sparseae.models.autoencoder.model import Autoencoder

    sparsity = args.sparsity or DEFAULT_SPARSITY
    *inner, code = args.hidden
    params = _sparsity_params(args, sparsity, code)
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


def _check_args(args: argparse.Namespace) -> None:
    """Refuse options that cannot work before any data is read or model trained."""
    if args.contamination is not None and not 0 < args.contamination < 0.5:
        raise ConfigError(f"--contamination must lie in (0, 0.5), got {args.contamination}")
    if args.model is None:
        return
    given = [n for n in options.SPARSITY_FLAGS if getattr(args, n, None) is not None]
    given += [n for n in ("sparsity", "code_activation") if getattr(args, n) is not None]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in sorted(given))
        raise ConfigError(
            f"{flags} set the model detect trains; with --model the saved model's own "
            "sparsity is used: drop them"
        )


def _normal_rows(args: argparse.Namespace, data: Any) -> np.ndarray:
    """The training rows the model learns "normal" from (and the threshold is fitted on)."""
    train_x = data.train.x
    if args.normal_class is None:
        return train_x
    if data.train.y is None:
        raise ConfigError("--normal-class needs a labelled dataset (see --label-column)")
    classes = sorted(set(int(c) for c in np.unique(data.train.y)))
    if args.normal_class not in classes:
        raise ConfigError(
            f"--normal-class {args.normal_class} is not a class of "
            f"{data.name}: choose one of {', '.join(map(str, classes))}"
        )
    return train_x[data.train.y == args.normal_class]


def _write_scores(
    out: Path, split: Any, names: np.ndarray, scores: np.ndarray, flags: np.ndarray
) -> None:
    """One CSV line per scored row, keyed by its row number in the source and its split."""
    out.parent.mkdir(parents=True, exist_ok=True)
    labels = split.y
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["row", "split", "score", "is_anomaly"] + (["label"] if labels is not None else [])
        )
        for i, row in enumerate(split.row_numbers()):
            line = [int(row), names[i], f"{scores[i]:.6g}", int(flags[i])]
            w.writerow(line + ([int(labels[i])] if labels is not None else []))


def _model_for(args: argparse.Namespace, saved: Any, data: Any, train_x: np.ndarray) -> Any:
    """The saved model (checked against the data), or a fresh one trained on `train_x`."""
    from sparseae.cli.encode import check_features
    from sparseae.training.trainer import fit

    if saved is not None:
        check_features(saved, data)
        return saved
    model = _build_model(args, data)
    fit(
        model,
        train_x,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=False,
    )
    return model


def _scorer(args: argparse.Namespace, model: Any, train_x: np.ndarray) -> tuple[np.ndarray, Any]:
    """The normal rows' scores, and the function that scores new rows the same way."""
    from sparseae.apps.anomaly import reconstruction_errors
    from sparseae.apps.combined_score import CombinedScore, model_views

    if args.score == "reconstruction":
        return reconstruction_errors(model, train_x), lambda x: reconstruction_errors(model, x)
    state, train_scores = CombinedScore.fit(*model_views(model, train_x), args.neighbors, args.seed)
    return train_scores, lambda x: state.combine(state.raw_parts(*model_views(model, x)))


def run(args: argparse.Namespace) -> int:
    from sparseae.apps.anomaly import auroc, threshold_from_errors
    from sparseae.checkpoint import load
    from sparseae.cli.encode import default_split

    _check_args(args)
    saved = load(args.model) if args.model else None
    data = (
        options.load_data_for_model(args, saved) if saved is not None else options.load_data(args)
    )
    train_x = _normal_rows(args, data)
    which = default_split(args, whole_file=args.normal_class is None)
    split, names = options.select_rows(data, which, explicit=args.split is not None)
    model = _model_for(args, saved, data, train_x)
    train_scores, score = _scorer(args, model, train_x)
    if args.n_std is not None:
        threshold = threshold_from_errors(train_scores, n_std=args.n_std)
    else:
        threshold = threshold_from_errors(train_scores, contamination=args.contamination or 0.05)
    scores = score(split.x)
    flags = scores > threshold
    out = Path(args.out)
    _write_scores(out, split, names, scores, flags)
    print(
        f"threshold {threshold:.5g}; flagged {int(flags.sum())} of {len(scores)} rows "
        f"({which}); wrote {out}"
    )
    if args.normal_class is not None and split.y is not None:
        print(
            f"AUROC (anomaly = not class {args.normal_class}): "
            f"{auroc(scores, split.y != args.normal_class):.4f}"
        )
    return 0
