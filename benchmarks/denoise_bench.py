"""Denoising at sigma = 0.4 (document 002: Gaussian noise, clipped to [0, 1]) on MNIST and
Fashion-MNIST: PSNR and MSE of noisy vs denoised test images, next to two classical
baselines run in the same script (the best Gaussian and median filters, the best PCA
projection, each tuned on the validation images), and a figure of noisy/denoised/clean rows.

One command: ``python benchmarks/denoise_bench.py`` (``--quick``: 2 epochs, 10,000 images).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from _common import RESULTS, md_table, write_results
from scipy import ndimage
from sklearn.decomposition import PCA

import sparseae
from sparseae.apps.denoise import add_gaussian_noise, denoise, psnr
from sparseae.data import find_shared_data_dir, load_dataset
from sparseae.report import figures as viz


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).mean())


def best_filter(kind: str, noisy_val: np.ndarray, clean_val: np.ndarray, params: list) -> tuple:
    def apply(x: np.ndarray, p: float) -> np.ndarray:
        imgs = x.reshape(-1, 28, 28)
        if kind == "gaussian":
            out = ndimage.gaussian_filter(imgs, sigma=(0, p, p))
        else:
            out = ndimage.median_filter(imgs, size=(1, p, p))
        return out.reshape(len(x), -1)

    best = min(params, key=lambda p: mse(apply(noisy_val, p), clean_val))
    return best, apply


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--sigma", type=float, default=0.4)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    limit = 10_000 if args.quick else None
    lines = [
        "# Denoising at sigma 0.4",
        "",
        f"Command: `python benchmarks/denoise_bench.py{' --quick' if args.quick else ''}`."
        f" Denoising AE 784-512-256-512-784 (relu, sigmoid output, BCE), Gaussian "
        f"corruption sigma {args.sigma} clipped to [0, 1] in training, Adam 1e-3, batch "
        f"128, {epochs} epochs. Baselines tuned on the validation images.",
        "",
    ]
    results = {}
    for name in ("mnist", "fashion-mnist"):
        data = load_dataset(name, data_dir=args.data_dir or find_shared_data_dir(), limit=limit)
        clean_te, clean_va = data.test.x, data.val.x[:1000]
        noisy_te = add_gaussian_noise(clean_te, args.sigma, seed=1)
        noisy_va = add_gaussian_noise(clean_va, args.sigma, seed=2)
        torch.manual_seed(0)
        model = sparseae.Autoencoder(
            d_in=784,
            hidden=[512],
            n_latents=256,
            loss="bce",
            corruption="gaussian",
            corruption_params={"sigma": args.sigma},
        )
        t0 = time.perf_counter()
        sparseae.fit(model, data.train.x, epochs=epochs, batch_size=128, progress=False)
        train_s = time.perf_counter() - t0
        dae = denoise(model, noisy_te)
        g_p, g_apply = best_filter("gaussian", noisy_va, clean_va, [0.5, 0.75, 1.0, 1.25, 1.5])
        m_p, m_apply = best_filter("median", noisy_va, clean_va, [2, 3, 4, 5])
        n_best = min(
            [16, 32, 64, 128],
            key=lambda n: mse(
                PCA(n, random_state=0)
                .fit(data.train.x[:10000])
                .inverse_transform(
                    PCA(n, random_state=0).fit(data.train.x[:10000]).transform(noisy_va)
                ),
                clean_va,
            ),
        )
        pca = PCA(n_best, random_state=0).fit(data.train.x[:10000])
        estimates = {
            "noisy input": noisy_te,
            f"Gaussian filter (sigma {g_p})": g_apply(noisy_te, g_p),
            f"median filter ({m_p}x{m_p})": m_apply(noisy_te, m_p),
            f"PCA projection ({n_best} components)": pca.inverse_transform(pca.transform(noisy_te)),
            "sparseae denoising AE": dae,
        }
        rows = [
            {"method": k, "PSNR dB": psnr(clean_te, v), "MSE": mse(clean_te, v)}
            for k, v in estimates.items()
        ]
        results[name] = {"rows": rows, "train_seconds": train_s}
        fig = viz.reconstructions(
            clean_te[:10],
            dae[:10],
            (28, 28),
            f"{name}: clean / denoised / noisy (sigma {args.sigma})",
            rows=("clean", "denoised", "noisy"),
            extra=[noisy_te[:10]],
        )
        viz.save_png(fig, RESULTS / f"denoise_{name}{'_quick' if args.quick else ''}.png")
        lines += [
            f"## {name} (training {train_s:.0f} s)",
            "",
            md_table(rows, ["method", "PSNR dB", "MSE"]),
            "",
            f"![{name}](denoise_{name}{'_quick' if args.quick else ''}.png)",
            "",
        ]
        print(lines[-4], flush=True)
    text = "\n".join(lines)
    print(text)
    write_results("denoise", text, results, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
