"""One-class anomaly detection, the standard protocol: for each class c, train on the
training images of class c only, score all 10,000 test images by reconstruction error, and
report the AUROC of 'not c', for MNIST and Fashion-MNIST, with published means beside ours.

One command: ``python benchmarks/one_class_auroc.py`` (``--quick``: 2 epochs, 2 classes).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from _common import md_table, write_results

import sparseae
from sparseae.apps.anomaly import auroc, reconstruction_errors
from sparseae.data import find_shared_data_dir, load_dataset

PUBLISHED = {
    "mnist": {"Deep SVDD": 94.8, "DCAE": 89.7, "OC-SVM": 91.3},
    "fashion-mnist": {"GEOM": 93.5, "CAE+OC-SVM": 91.7, "Deep SAD": 89.2},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    classes = range(2) if args.quick else range(10)
    results: dict = {"epochs": epochs, "datasets": {}}
    lines = [
        "# One-class AUROC (train on one class, detect the other nine)",
        "",
        f"Command: `python benchmarks/one_class_auroc.py{' --quick' if args.quick else ''}`"
        f". Model per class: MLP autoencoder 784-256-32-256-784 (relu, sigmoid output, "
        f"BCE), L1 activity penalty 1e-5 on the code, Adam 1e-3, batch 64, {epochs} "
        "epochs on that class's training images (about 6,000); score = per-image MSE.",
        "",
    ]
    for name in ("mnist", "fashion-mnist"):
        data = load_dataset(name, data_dir=args.data_dir or find_shared_data_dir(), val_size=0)
        rows, t_all = [], time.perf_counter()
        for c in classes:
            torch.manual_seed(c)
            model = sparseae.Autoencoder(
                d_in=784,
                hidden=[256],
                n_latents=32,
                loss="bce",
                sparsity="l1",
                sparsity_params={"weight": 1e-5},
            )
            t0 = time.perf_counter()
            sparseae.fit(
                model, data.train.x[data.train.y == c], epochs=epochs, batch_size=64, progress=False
            )
            scores = reconstruction_errors(model, data.test.x)
            rows.append(
                {
                    "class": c,
                    "auroc": 100 * auroc(scores, data.test.y != c),
                    "train_s": time.perf_counter() - t0,
                }
            )
            print(f"{name} class {c}: AUROC {rows[-1]['auroc']:.1f}", flush=True)
        mean = float(np.mean([r["auroc"] for r in rows]))
        results["datasets"][name] = {
            "per_class": rows,
            "mean": mean,
            "seconds": time.perf_counter() - t_all,
        }
        lines += [
            f"## {name}",
            "",
            md_table(rows, ["class", "auroc", "train_s"], ["class", "AUROC %", "train s"]),
            "",
            f"Mean AUROC: **{mean:.1f}** (sparseae, {epochs} epochs per class, "
            f"{results['datasets'][name]['seconds']:.0f} s in all); published means: "
            + ", ".join(f"{k} {v}" for k, v in PUBLISHED[name].items())
            + ".",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    write_results("one_class_auroc", text, results, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
