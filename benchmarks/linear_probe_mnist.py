"""k-sparse AE features on MNIST (Makhzani & Frey 2013): 1,000 latents, k = 25, alpha*k = 75
at inference; logistic regression on the 60,000 training codes, error on the 10,000 test
images, next to logistic regression on raw pixels. The paper reports 1.35% error without
fine-tuning.

One command: ``python benchmarks/linear_probe_mnist.py`` (``--quick``: 10,000 images).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import md_table, write_results

import sparseae
from sparseae.apps.features import encode, linear_probe_accuracy
from sparseae.data import find_shared_data_dir, load_dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--alpha", type=float, default=3.0)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    limit = 10_000 if args.quick else None
    epochs = 2 if args.quick else args.epochs
    data = load_dataset(
        "mnist", data_dir=args.data_dir or find_shared_data_dir(), val_size=0, limit=limit
    )
    xtr, ytr, xte, yte = data.train.x, data.train.y, data.test.x, data.test.y
    torch.manual_seed(0)
    model = sparseae.Autoencoder(
        d_in=784,
        n_latents=1000,
        code_activation="linear",
        tied=True,
        sparsity="topk",
        sparsity_params={"k": 25, "alpha": args.alpha, "relu": False},
    )
    t0 = time.perf_counter()
    sparseae.fit(model, xtr, epochs=epochs, batch_size=128, lr=1e-3, progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = linear_probe_accuracy(encode(model, xtr), ytr, encode(model, xte), yte, max_iter=300)
    probe_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw = linear_probe_accuracy(xtr, ytr, xte, yte, max_iter=300)
    raw_s = time.perf_counter() - t0
    rows = [
        {
            "features": "k-sparse AE codes (1000 latents, k=25, "
            f"alpha*k={model.sparsity.inference_k})",
            "test error %": 100 * (1 - acc),
            "train s": train_s,
            "probe s": probe_s,
        },
        {
            "features": "raw pixels",
            "test error %": 100 * (1 - raw),
            "train s": 0.0,
            "probe s": raw_s,
        },
        {"features": "Makhzani & Frey 2013 (paper, no fine-tuning)", "test error %": 1.35},
    ]
    text = (
        "# Linear probe on k-sparse AE features, MNIST\n\n"
        f"Command: `python benchmarks/linear_probe_mnist.py{' --quick' if args.quick else ''}`; "
        f"{len(xtr)} training images, {epochs} epochs of Adam (lr 1e-3, batch 128), tied "
        "weights, linear code; logistic regression (lbfgs, 300 iterations, standardised codes) "
        f"on the training codes; {len(xte)} test images.\n\n"
        + md_table(rows, ["features", "test error %", "train s", "probe s"])
    )
    print(text)
    write_results("linear_probe_mnist", text, {"rows": rows, "epochs": epochs}, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
