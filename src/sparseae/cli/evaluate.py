"""``sparseae evaluate``: the field's statistics of one or more dictionaries on the same
activations, side by side (sparseae runs and SAELens / sparsify / dictionary_learning
folders alike), written as a table, eval.json and a firing-frequency histogram per model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sparseae.cli import options

COLUMNS = ["model", "rows", "fvu", "explained_variance", "normalized_mse", "cosine", "l0",
           "dead_latents", "dense_latents"]  # fmt: skip


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="FVU, L0, dead/dense latents and firing histograms of saved dictionaries",
        description=__doc__.split("\n", 1)[0].strip("`") + " FVU = sum ||x - x_hat||^2 / sum "
        "||x - mean||^2; normalized MSE divides by sum ||x||^2 instead; dead: never fired in the "
        "rows evaluated; dense: fired on more than 10%% of them.",
    )
    p.add_argument("models", nargs="+", help="model folders (any format sparseae loads)")
    options.add_data_options(p)
    options.add_split_option(p, "all for a user file or a shard folder, test for a named set")
    p.add_argument("--max-rows", type=options.positive_int, default=None, help="rows to use")
    p.add_argument("--out", default=None, help="folder for eval.json and firing_*.png")
    p.set_defaults(run=run)


def _rows(args: argparse.Namespace, model: Any) -> Any:
    from sparseae.data.shards import ShardDataset, is_shard_folder

    if is_shard_folder(args.dataset):
        return ShardDataset(args.dataset)
    data = options.load_data_for_model(args, model)
    which = args.split or ("all" if options.is_user_file(args.dataset) else "test")
    split, _ = options.select_rows(data, which, args.split is not None)
    return split.x


def run(args: argparse.Namespace) -> int:
    from sparseae.apps.sae_eval import evaluate_dictionary
    from sparseae.checkpoint import load
    from sparseae.cli.encode import check_features

    models = [load(m) for m in args.models]
    rows = _rows(args, models[0])
    results = []
    for path, model in zip(args.models, models, strict=True):
        check_features(model, _Shape(rows))
        result = evaluate_dictionary(model, rows, max_rows=args.max_rows)
        results.append({"model": str(path), **result})
    print(options.format_table([{c: r[c] for c in COLUMNS} for r in results], COLUMNS))
    if args.out:
        _write(Path(args.out), results)
    return 0


class _Shape:
    """What check_features reads of a dataset: its name and feature count."""

    def __init__(self, rows: Any) -> None:
        self.name = "the activations"
        self.d_in = rows.d_in if hasattr(rows, "d_in") else int(rows.shape[1])


def _write(out: Path, results: list[dict[str, Any]]) -> None:
    from sparseae.atomic import atomic_write_text
    from sparseae.report.figures import firing_frequency_histogram

    out.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(results):
        firing_frequency_histogram(
            r["firing"], out / f"firing_{i}.png", title=Path(r["model"]).name
        )
    clean = [{k: v for k, v in r.items() if k != "firing"} for r in results]
    atomic_write_text(out / "eval.json", json.dumps(clean, indent=2))
    print(f"wrote {out}/eval.json and {len(results)} firing histogram(s)")
