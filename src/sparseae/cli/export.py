"""``sparseae export``: write a saved SAE or transcoder as another library's folder."""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("saelens", "sparsify", "dictionary-learning")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a saved SAE or transcoder as a SAELens, sparsify or dictionary_learning folder",
        description="Write a model (a sparseae run folder, or any folder sparseae loads) in "
        "another library's layout, for its own loader: SAELens (cfg.json + "
        "sae_weights.safetensors: dictionary, gated and Matryoshka SAEs, ReLU/JumpReLU "
        "transcoders with or without skip), sparsify (cfg.json + sae.safetensors: TopK SAEs "
        "and TopK transcoders with d_out == d_in) or dictionary_learning (config.json + "
        "ae.pt, a torch.save of tensors: dictionary, gated and Matryoshka SAEs). What a "
        "layout cannot hold is refused with the reason.",
    )
    p.add_argument("model", help="folder of the SAE to export")
    p.add_argument("--format", required=True, choices=FORMATS, help="the target library")
    p.add_argument("--out", required=True, help="folder to write (created if missing)")
    p.add_argument(
        "--fold-scaling",
        action="store_true",
        help="fold a zero-shift scalar input scaling (--normalize) into an SAE's weights first",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sparseae.checkpoint import load
    from sparseae.interop import export

    model = load(args.model)
    if args.fold_scaling and getattr(model, "input_transform", None) is not None:
        if model.input_transform.active:
            if not hasattr(model, "fold_input_transform"):
                from sparseae.errors import CheckpointError

                raise CheckpointError(
                    f"--fold-scaling folds an SAE's scaling; a {model.checkpoint_kind} model "
                    "has no fold: export one trained on unscaled inputs"
                )
            model.fold_input_transform()
    folder = export(model, args.out, args.format)
    print(f"wrote {folder}/ ({args.format}) from {args.model}")
    return 0
