"""``sparseae encode``: codes of a saved model for a dataset, as a .npy file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.cli import options


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "encode",
        help="write the codes of a saved model for a dataset (.npy)",
        description="Encode a dataset (every row in file order, or one split) with a saved "
        "model (a run folder) and write the codes as .npy, one row per input row; next to "
        "them *_rows.npy (each code's 0-based row in the source), *_splits.npy (its split: "
        "train, val or test) and, for labelled data, *_labels.npy.",
    )
    p.add_argument("model", help="run folder written by sparseae train / compare")
    options.add_data_options(p)
    options.add_split_option(p, "all for a user file, test for a named dataset")
    p.add_argument("--out", required=True, help="output .npy file for the codes")
    from sparseae.catalog import coder_names

    p.add_argument(
        "--algorithm",
        choices=("encoder", *coder_names()),
        default="encoder",
        help="encoder: the model's own encoder (default); omp/lasso/threshold/topk: sparse "
        "coding on the model's decoder atoms (an SAE or one-layer autoencoder), which "
        "reconstructs better at the same L0 than a one-step encoder",
    )
    p.add_argument(
        "--n-nonzero", type=int, default=None, help="atoms per code for omp/topk (default 10%%)"
    )
    p.add_argument("--alpha", type=float, default=None, help="penalty for lasso/threshold")
    p.set_defaults(run=run)


def code_rows(model: Any, x: Any, args: argparse.Namespace) -> np.ndarray:
    """The model's own codes, or a sparse coder's on its atoms (``--algorithm``)."""
    if args.algorithm == "encoder":
        from sparseae.apps.features import encode

        return encode(model, x)
    from sparseae.dictionary_estimator import DictionaryLearning

    coder = DictionaryLearning.from_model(
        model,
        transform_algorithm=args.algorithm,
        transform_n_nonzero_coefs=args.n_nonzero,
        transform_alpha=args.alpha,
    )
    rows = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return coder.transform(rows)


def check_features(model: Any, data: Any) -> None:
    """The model and the data must agree on the feature count; when a column was taken as
    labels by its name, say so, since that column may have been a feature at training time."""
    from sparseae.errors import DataError

    if model.d_in == data.d_in:
        return
    hint = "use the dataset the model was trained on"
    label = getattr(data, "label_column", None)
    if label is not None and model.d_in == data.d_in + 1:
        hint = f"column {label!r} was read as labels: pass --label-column none to keep it"
    raise DataError(
        f"the model expects {model.d_in} features but {data.name} has {data.d_in}: {hint}"
    )


def default_split(args: argparse.Namespace, whole_file: bool) -> str:
    """--split as given, else all (every row in file order) when `whole_file` and the data
    is a user file, else test (a named set's held-out split)."""
    if args.split is not None:
        return str(args.split)
    return "all" if whole_file and options.is_user_file(args.dataset) else "test"


def save_row_keys(out: Path, split: Any, names: np.ndarray) -> list[Path]:
    """Write <stem>_rows.npy (source row numbers), <stem>_splits.npy and, for labelled data,
    <stem>_labels.npy next to `out`, so every output row can be traced to the user's row."""
    written = [out.with_name(out.stem + "_rows.npy"), out.with_name(out.stem + "_splits.npy")]
    np.save(written[0], split.row_numbers())
    np.save(written[1], names)
    if split.y is not None:
        written.append(out.with_name(out.stem + "_labels.npy"))
        np.save(written[-1], split.y)
    return written


def run(args: argparse.Namespace) -> int:
    from sparseae.checkpoint import load

    model = load(args.model)
    data = options.load_data_for_model(args, model)
    check_features(model, data)
    which = default_split(args, whole_file=True)
    split, names = options.select_rows(data, which, explicit=args.split is not None)
    codes = code_rows(model, split.x, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, codes)
    extra = save_row_keys(out, split, names)
    l0 = float((codes != 0).sum(axis=1).mean())
    print(
        f"wrote {out}: {codes.shape[0]} codes ({which} rows) of {codes.shape[1]} latents, "
        f"mean L0 {l0:.1f}; row numbers in {extra[0].name}"
    )
    return 0
