"""The validation protocol on which SparseAEDetector's defaults were chosen: one-class
detection inside the *training* images, so that no choice ever sees the test sets that
one_class_auroc.py reports.

For each class c of MNIST and Fashion-MNIST: fit on 5,000 of c's training images (a seeded
shuffle), then score c's remaining ~1,000 training images against 500 training images of
each other class; AUROC of "not c", mean over classes, for each candidate setting and seed.

One command: ``.venv/bin/python benchmarks/one_class_validation.py`` (``--quick``: 2
classes, 1 seed, 3 epochs; ``--candidates '[{"n_latents": 8}]'`` adds settings).
Writes benchmarks/results/one_class_validation.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import md_table, write_results  # noqa: E402

from sparseae.apps.anomaly import auroc  # noqa: E402
from sparseae.data import find_shared_data_dir, load_dataset  # noqa: E402
from sparseae.estimator import SparseAEDetector  # noqa: E402

#: the settings compared by default: the defaults and their closest alternatives
CANDIDATES: list[dict[str, Any]] = [
    {},
    {"n_latents": 32},
    {"n_neighbors": 10},
    {"anomaly_score": "reconstruction"},
]
FIT_ROWS, OTHERS_PER_CLASS = 5000, 500


def split(y: np.ndarray, c: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices: c's fitting rows, and the validation rows (c's rest, then the others)."""
    own = rng.permutation(np.flatnonzero(y == c))
    others = [rng.choice(np.flatnonzero(y == o), OTHERS_PER_CLASS, replace=False)
              for o in range(10) if o != c]  # fmt: skip
    return own[:FIT_ROWS], np.concatenate([own[FIT_ROWS:], *others])


def run_dataset(name: str, args: argparse.Namespace, candidates: list[dict]) -> dict[str, Any]:
    """AUROC % per candidate, class and seed on one data set's training images."""
    data = load_dataset(name, data_dir=args.data_dir or find_shared_data_dir(), val_size=0)
    x = data.train.x.reshape(len(data.train.x), -1).astype(np.float64)
    y = data.train.y
    rng = np.random.default_rng(123)
    out: dict[str, Any] = {json.dumps(c): {"auroc": [], "fit_cpu_s": []} for c in candidates}
    for c in range(2 if args.quick else 10):
        fit_rows, val_rows = split(y, c, rng)
        is_other = y[val_rows] != c
        for cand in candidates:
            rec = out[json.dumps(cand)]
            per_seed = []
            for seed in range(args.seeds):
                t0 = time.process_time()
                det = SparseAEDetector(random_state=seed, **cand, **args.short).fit(x[fit_rows])
                rec["fit_cpu_s"].append(time.process_time() - t0)
                per_seed.append(100 * auroc(det.decision_function(x[val_rows]), is_other))
            rec["auroc"].append(per_seed)
        print(name, c, {k: np.round(v["auroc"][-1], 2).tolist() for k, v in out.items()},
              flush=True)  # fmt: skip
    return out


def table(results: dict[str, Any]) -> str:
    """One row per candidate: mean over classes per seed (median, range), per data set."""
    rows = []
    first = next(iter(results.values()))
    for cand in first:
        row: dict[str, Any] = {"setting": "defaults" if cand == "{}" else f"`{cand}`"}
        for name, res in results.items():
            means = np.asarray(res[cand]["auroc"]).mean(axis=0)  # classes x seeds -> seeds
            row[name] = f"{np.median(means):.2f} ({means.min():.2f}-{means.max():.2f})"
        row["fit CPU-s / class"] = np.mean([r[cand]["fit_cpu_s"] for r in results.values()])
        rows.append(row)
    return md_table(rows, ["setting", *results, "fit CPU-s / class"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--candidates", default="[]", help="JSON list of extra settings")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.short = {"epochs": 3} if args.quick else {}
    if args.quick:
        args.seeds = 1
    candidates = CANDIDATES + json.loads(args.candidates)
    results = {name: run_dataset(name, args, candidates) for name in ("mnist", "fashion-mnist")}
    text = "\n".join([
        "# One-class validation protocol (training images only)",
        "",
        f"Command: `.venv/bin/python benchmarks/one_class_validation.py"
        f"{' --quick' if args.quick else ''}`. Per class c: `SparseAEDetector` fitted on "
        f"{FIT_ROWS} of c's training images, scored on c's other training images against "
        f"{OTHERS_PER_CLASS} training images of each other class; AUROC %, mean over classes, "
        f"median (range) over {args.seeds} seed(s). The test images are never used.",
        "",
        table(results),
    ])  # fmt: skip
    print(text)
    write_results("one_class_validation", text, {"candidates": candidates, **results}, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
