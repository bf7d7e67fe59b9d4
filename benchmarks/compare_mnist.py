"""Document 001's comparison on MNIST with 1,000 hidden units: do k-sparse and KL filters
look like pen strokes while plain-AE filters do not? Prints the table with per-method
training times and writes it, the filter PNGs and the HTML report to benchmarks/results/.

One command: ``python benchmarks/compare_mnist.py`` (``--quick``: 10,000 images, 3 epochs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

from sparseae.cli.options import format_table
from sparseae.data import find_shared_data_dir, load_dataset
from sparseae.experiments.compare import CompareSettings, run_compare

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    limit = 10_000 if args.quick else None
    epochs = 3 if args.quick else args.epochs
    data = load_dataset("mnist", data_dir=args.data_dir or find_shared_data_dir(), limit=limit)
    settings = CompareSettings(
        hidden=1000,
        k=25,
        epochs=epochs,
        batch_size=128,
        lr=1e-3,
        rho=0.05,
        kl_weight=0.1,
        arora_lr=0.05,
        n_atoms=100,
    )
    work = RESULTS / ("compare_mnist_quick" if args.quick else "compare_mnist")
    t0 = time.perf_counter()
    summary = run_compare(data, settings, work, progress=False, log=print)
    wall = time.perf_counter() - t0
    # keep only what a reader needs in the repository: the filters, the report, the numbers
    for f in work.glob("reconstructions_*.png"):
        f.unlink()
    cols = [
        "method",
        "test_mse",
        "l0",
        "l0_above_0.1",
        "frac_inactive",
        "dead_latents",
        "train_seconds",
        "parameters",
    ]
    table = format_table(summary["results"], cols)
    text = (
        f"# compare on MNIST, 1,000 hidden units\n\nCommand: `python benchmarks/compare_mnist.py"
        f"{' --quick' if args.quick else ''}`; {len(data.train)} training images, {epochs} "
        f"epochs, batch {settings.batch_size}, Adam {settings.lr:g} (L2 {settings.weight_decay:g}; "
        f"KL rho {settings.rho:g} weight {settings.kl_weight:g}; top-k k={settings.k}; Arora "
        f"eta {settings.arora_lr:g}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; whole run {wall:.0f} s."
        f"\n\n```\n{table}\n```\n\nFilters: `{work.name}/filters_*.png`; report: "
        f"`{work.name}/report.html`.\n"
    )
    print(text)
    (RESULTS / f"{work.name}.md").write_text(text)
    shutil.copy(work / "results.json", RESULTS / f"{work.name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
