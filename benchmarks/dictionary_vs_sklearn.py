"""Sparse dictionaries against scikit-learn's: MNIST, 256 atoms, the first 10,000 training
images, test MSE of OMP codes at L0 = 10 and 25 on the 10,000 test images.

Peer: ``MiniBatchDictionaryLearning(n_components=256, transform_algorithm="omp",
transform_n_nonzero_coefs=L0, random_state=seed)`` with its defaults otherwise; one fit
serves both L0 (its fit does not depend on it), so its cost per L0 is that fit plus the
transform at that L0. Ours: ``sparseae.DictionaryLearning(256, transform_n_nonzero_coefs=L0)``
with its defaults, fitted for each L0. Repeats alternate which library runs first; CPU
seconds (process time, all threads) beside wall seconds. Also measured once, for context:
a TopK SAE (its own one-step encoder, and OMP on its atoms via ``from_model``) and Arora et
al.'s learner (L0 delivered against the L0 asked).

One command: ``.venv/bin/python benchmarks/dictionary_vs_sklearn.py`` (``--quick``: 2,000
images, 1 repeat, no context rows). Writes ``benchmarks/results/dictionary_vs_sklearn.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from _common import RESULTS, md_table, write_results
from sklearn.decomposition import MiniBatchDictionaryLearning

import sparseae
from sparseae.data import find_shared_data_dir, load_dataset

L0S = (10, 25)
ATOMS = 256


def timed(fn: Any) -> tuple[Any, float, float]:
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    return float(((x - x_hat) ** 2).mean())


def run_peer(xtr: np.ndarray, xte: np.ndarray, seed: int) -> dict[int, dict[str, float]]:
    peer = MiniBatchDictionaryLearning(
        n_components=ATOMS, transform_algorithm="omp", random_state=seed
    )
    _, fit_cpu, fit_wall = timed(lambda: peer.fit(xtr))
    out = {}
    for k in L0S:
        peer.set_params(transform_n_nonzero_coefs=k)
        codes, cpu, wall = timed(lambda: peer.transform(xte))
        out[k] = {
            "mse": mse(xte, codes @ peer.components_),
            "cpu": fit_cpu + cpu,
            "wall": fit_wall + wall,
            "transform_cpu": cpu,
        }
    return out


def run_ours(xtr: np.ndarray, xte: np.ndarray, seed: int) -> dict[int, dict[str, float]]:
    out = {}
    for k in L0S:
        est = sparseae.DictionaryLearning(ATOMS, transform_n_nonzero_coefs=k, random_state=seed)
        _, fit_cpu, fit_wall = timed(lambda: est.fit(xtr))  # noqa: B023
        codes, cpu, wall = timed(lambda: est.transform(xte))  # noqa: B023
        out[k] = {
            "mse": mse(xte, est.inverse_transform(codes)),
            "cpu": fit_cpu + cpu,
            "wall": fit_wall + wall,
            "transform_cpu": cpu,
            "l0": float((codes != 0).sum(1).mean()),
        }
    return out


def context_rows(xtr: np.ndarray, xte: np.ndarray) -> list[dict[str, Any]]:
    """One SAE and one Arora learner per L0: what a one-step encoder loses, and that the
    same atoms coded by OMP win it back."""
    rows = []
    xt = torch.tensor(xte, dtype=torch.float32)
    for k in L0S:
        torch.manual_seed(0)
        sae = sparseae.SAE(d_in=784, n_latents=ATOMS, sparsity="topk", sparsity_params={"k": k})
        _, cpu, _ = timed(
            lambda: sparseae.fit(sae, xtr.astype(np.float32), epochs=10, batch_size=256)  # noqa: B023
        )
        sae.eval()
        with torch.no_grad():
            own = mse(xte, sae(xt).numpy())
        omp = sparseae.DictionaryLearning.from_model(sae, transform_n_nonzero_coefs=k)
        rows.append(_context("TopK SAE, 10 epochs", k, k, own, omp, xte, cpu))
        arora = sparseae.NeuralSparseCoding(d_in=784, n_latents=ATOMS, target_l0=k)
        _, cpu, _ = timed(
            lambda: sparseae.fit(arora, xtr.astype(np.float32), epochs=10, batch_size=256)  # noqa: B023
        )
        arora.eval()
        with torch.no_grad():
            h = arora.encode(xt)
            own = mse(xte, arora.decode(h).numpy())
        l0 = float((h != 0).sum(1).float().mean())
        omp = sparseae.DictionaryLearning.from_components(
            arora.filters().numpy(), offset=arora.mean.numpy(), transform_n_nonzero_coefs=k
        )
        rows.append(_context("Arora et al. 2015, 10 epochs", k, l0, own, omp, xte, cpu))
    return rows


def _context(name, k, l0, own, omp, xte, cpu) -> dict[str, Any]:  # noqa: ANN001
    return {
        "model": name,
        "L0 asked": k,
        "L0 delivered": round(l0, 2),
        "MSE, own encoder": own,
        "MSE, OMP on its atoms": float(omp.reconstruction_error(xte).mean()),
        "train CPU s": round(cpu, 1),
    }


def _int_keys(runs: list[dict]) -> list[dict[int, dict[str, float]]]:
    return [{int(k): v for k, v in run.items()} for run in runs]


def summary(runs: list[dict[int, dict[str, float]]], k: int, key: str) -> tuple[float, str]:
    vals = [r[k][key] for r in runs]
    return statistics.median(vals), f"{min(vals):.4g}-{max(vals):.4g}"


def table(peer: list, ours: list) -> tuple[str, list[dict[str, Any]]]:
    rows = []
    for k in L0S:
        for name, runs in (("scikit-learn MiniBatchDictionaryLearning", peer), ("sparseae", ours)):
            m, m_rng = summary(runs, k, "mse")
            c, c_rng = summary(runs, k, "cpu")
            w, _ = summary(runs, k, "wall")
            rows.append(
                {"L0": k, "library": name, "test MSE": m, "MSE range": m_rng,
                 "fit+transform CPU s": c, "CPU range": c_rng, "wall s": w}
            )  # fmt: skip
        pm, pc = summary(peer, k, "mse")[0], summary(peer, k, "cpu")[0]
        om, oc = summary(ours, k, "mse")[0], summary(ours, k, "cpu")[0]
        rows.append(
            {"L0": k, "library": "ratio sparseae / peer", "test MSE": om / pm,
             "fit+transform CPU s": oc / pc}
        )  # fmt: skip
    cols = ["L0", "library", "test MSE", "MSE range", "fit+transform CPU s", "CPU range", "wall s"]
    return md_table(rows, cols), rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument(
        "--context-only", action="store_true", help="rerun the context rows, keep the rest"
    )
    args = ap.parse_args(argv)
    n, repeats = (2000, 1) if args.quick else (10_000, args.repeats)
    data = load_dataset("mnist", data_dir=args.data_dir or find_shared_data_dir(), val_size=0)
    xtr = np.asarray(data.train.x[:n], dtype=np.float64).reshape(n, -1)
    xte = np.asarray(data.test.x, dtype=np.float64).reshape(len(data.test.x), -1)
    peer, ours = [], []
    if args.context_only:  # the timed rows from the last full run
        saved = json.loads((RESULTS / "dictionary_vs_sklearn.json").read_text())
        peer, ours = (_int_keys(saved[s]) for s in ("peer", "ours"))
        repeats = 0
    for r in range(repeats):
        order = (("peer", run_peer), ("ours", run_ours))
        for name, fn in order if r % 2 == 0 else order[::-1]:
            res = fn(xtr, xte, r)
            (peer if name == "peer" else ours).append(res)
            print(f"repeat {r} {name}: " + ", ".join(
                f"L0 {k} MSE {res[k]['mse']:.5f} CPU {res[k]['cpu']:.1f}s" for k in L0S
            ), flush=True)  # fmt: skip
    repeats = len(peer)
    text, rows = table(peer, ours)
    context = [] if args.quick else context_rows(xtr, xte)
    lines = [
        "# Sparse dictionaries: sparseae against scikit-learn",
        "",
        f"Command: `.venv/bin/python benchmarks/dictionary_vs_sklearn.py"
        f"{' --quick' if args.quick else ''}`. MNIST pixels in [0, 1], {ATOMS} atoms, the "
        f"first {n:,} training images, MSE per pixel on the 10,000 test images, OMP codes at "
        f"each L0; {repeats} repeat(s) (seeds 0..{repeats - 1}), order alternating; medians "
        f"and ranges; CPU = process time over all threads ({torch.get_num_threads()} here).",
        "",
        text,
        "",
    ]
    if context:
        lines += [
            "Context (one run each): a one-step encoder against OMP on the same atoms.",
            "",
            md_table(context, list(context[0])),
            "",
        ]
    print("\n".join(lines))
    write_results(
        "dictionary_vs_sklearn",
        "\n".join(lines),
        {"peer": peer, "ours": ours, "table": rows, "context": context, "n_train": n},
        args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
