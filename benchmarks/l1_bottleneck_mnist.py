"""Document 000's claim on MNIST: an L1 activity penalty on the bottleneck leaves at least
3x as many bottleneck neurons inactive (exactly zero) as the undercomplete AE.

One command: ``python benchmarks/l1_bottleneck_mnist.py`` (``--quick``: 1 seed, 2 epochs).

Both models are 784-64-16-64-784 (relu, sigmoid output, MSE, Adam), the sparse one with
Keras-equivalent ``ActivityRegularization(l1=1e-3)`` on the 16-unit bottleneck. Trained on the
60,000 training images, measured on the 10,000 test images, over several seeds, keeping two
notions apart: *inactive for this input* (zeros per image, averaged) and *dead for every
input* (units that are zero on all 10,000 test images).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import sparseae
from sparseae.data import find_shared_data_dir, load_dataset

RESULTS = Path(__file__).resolve().parent / "results"


def build(sparsity: str) -> sparseae.Autoencoder:
    params = {"weight": 1e-3} if sparsity == "l1" else {}
    return sparseae.Autoencoder(
        d_in=784,
        hidden=[64],
        n_latents=16,
        activation="relu",
        code_activation="relu",
        loss="mse",
        sparsity=sparsity,
        sparsity_params=params,
    )


def measure(model: sparseae.Autoencoder, x: torch.Tensor) -> dict:
    model.eval()
    with torch.no_grad():
        h = model.encode(x)
        mse = float(((model.decode(h) - x) ** 2).mean())
    zeros_per_input = (h == 0).sum(dim=1).float()
    return {
        "mse": mse,
        "inactive_per_input": float(zeros_per_input.mean()),
        "dead_for_every_input": int(((h != 0).sum(dim=0) == 0).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    epochs = 2 if args.quick else args.epochs
    data = load_dataset("mnist", data_dir=args.data_dir or find_shared_data_dir(), val_size=0)
    xtr, xte = torch.from_numpy(data.train.x), torch.from_numpy(data.test.x)
    runs = []
    for seed in range(seeds):
        row: dict = {"seed": seed}
        for sparsity in ("none", "l1"):
            torch.manual_seed(seed)
            model = build(sparsity)
            t0 = time.perf_counter()
            sparseae.fit(
                model, xtr, epochs=epochs, batch_size=args.batch_size, seed=seed, progress=False
            )
            row[sparsity] = {**measure(model, xte), "train_seconds": time.perf_counter() - t0}
        row["ratio"] = row["l1"]["inactive_per_input"] / max(
            row["none"]["inactive_per_input"], 1e-9
        )
        runs.append(row)
        print(
            f"seed {seed}: AE inactive/input {row['none']['inactive_per_input']:.2f} "
            f"(dead {row['none']['dead_for_every_input']}), SAE "
            f"{row['l1']['inactive_per_input']:.2f} (dead {row['l1']['dead_for_every_input']}),"
            f" ratio {row['ratio']:.2f}",
            flush=True,
        )

    def stat(values: list[float]) -> str:
        if len(values) == 1:
            return f"{values[0]:.3g}"
        return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"

    def col(model: str, key: str) -> list[float]:
        return [r[model][key] for r in runs]

    ratios = [r["ratio"] for r in runs]
    pooled = statistics.mean(col("l1", "inactive_per_input")) / max(
        statistics.mean(col("none", "inactive_per_input")), 1e-9
    )
    lines = [
        "# Document 000 on MNIST: undercomplete AE vs L1 sparse AE (16-unit bottleneck)",
        "",
        f"Command: `python benchmarks/l1_bottleneck_mnist.py{' --quick' if args.quick else ''}`"
        f"; {epochs} epochs, batch {args.batch_size}, Adam 1e-3, MSE, {seeds} seed(s); "
        "measured on the 10,000 test images.",
        "",
        "| model | test MSE | inactive neurons per input (of 16) | dead for every input | "
        "train s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, key in (("undercomplete AE", "none"), ("L1 sparse AE (1e-3)", "l1")):
        lines.append(
            f"| {name} | {stat(col(key, 'mse'))} | {stat(col(key, 'inactive_per_input'))} | "
            f"{stat(col(key, 'dead_for_every_input'))} | {stat(col(key, 'train_seconds'))} |"
        )
    lines += [
        "",
        f"Ratio of inactive-per-input (SAE / AE) per seed: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; mean {stat(ratios)}; ratio of the means "
        f"{pooled:.2f} (claim: at least 3).",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (RESULTS / f"l1_bottleneck_mnist{suffix}.md").write_text(table + "\n")
    (RESULTS / f"l1_bottleneck_mnist{suffix}.json").write_text(
        json.dumps({"epochs": epochs, "runs": runs}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
