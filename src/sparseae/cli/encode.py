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
        description="Encode a dataset split with a saved model (a run folder) "
        "and write the codes as .npy (labels next to them as *_labels.npy).",
    )
    p.add_argument("model", help="run folder written by sparseae train / compare")
    options.add_data_options(p)
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="test",
        help="which split to encode (default: test)",
    )
    p.add_argument("--out", required=True, help="output .npy file for the codes")
    p.set_defaults(run=run)


def check_features(model: Any, data: Any) -> None:
    from sparseae.errors import DataError

    if model.d_in != data.d_in:
        raise DataError(
            f"the model expects {model.d_in} features but {data.name} has {data.d_in}: use the "
            "dataset the model was trained on"
        )


def run(args: argparse.Namespace) -> int:
    from sparseae.apps.features import encode
    from sparseae.checkpoint import load

    model = load(args.model)
    data = options.load_data_for_model(args, model)
    check_features(model, data)
    split = getattr(data, args.split)
    codes = encode(model, split.x)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, codes)
    if split.y is not None:
        np.save(out.with_name(out.stem + "_labels.npy"), split.y)
    l0 = float((codes != 0).sum(axis=1).mean())
    print(f"wrote {out}: {codes.shape[0]} codes of {codes.shape[1]} latents, mean L0 {l0:.1f}")
    return 0
