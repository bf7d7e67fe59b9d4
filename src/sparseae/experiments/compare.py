"""Document 001's study: five ways to sparse codes on one dataset, one hidden size, one budget.

Methods (one shared single-hidden-layer architecture d_in -> H -> d_in, MSE on [0, 1] data,
sigmoid output):
- ``plain``: sigmoid code, no constraint;
- ``l2``: the same with L2 weight decay on the weights (an optimiser setting);
- ``kl``: sigmoid code with Ng's KL penalty to a target rate rho (Ng's notes add a weight
  decay of 1e-4 on a summed squared error; on sparseae's mean-per-pixel scale that is about
  3e-7, negligible, so it is left out);
- ``arora``: Arora et al. 2015's neural sparse coding, no backpropagation;
- ``topk``: Makhzani & Frey's k-sparse AE (linear code, k largest kept, alpha*k at inference).

Each method is trained and timed, its filters snapshotted over training, and the results go
to one self-contained HTML report plus PNG figures and JSON/CSV numbers.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparseae.atomic import atomic_write_text
from sparseae.errors import ConfigError
from sparseae.experiments.settings import METHODS, CompareSettings
from sparseae.models.autoencoder.model import Autoencoder
from sparseae.models.sparse_coding import NeuralSparseCoding, SparseCodingConfig
from sparseae.report import figures as viz
from sparseae.report.html import Report
from sparseae.training.callbacks import FilterSnapshots, snapshot_epochs
from sparseae.training.config import TrainConfig
from sparseae.training.evaluate import evaluate, map_batches
from sparseae.training.trainer import Trainer

LABELS = {
    "plain": "plain autoencoder",
    "l2": "autoencoder + L2 weight decay",
    "kl": "KL sparse autoencoder (Ng)",
    "arora": "neural sparse coding (Arora et al. 2015)",
    "topk": "k-sparse autoencoder (Makhzani & Frey)",
}


@dataclass
class MethodResult:
    name: str
    label: str
    description: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)
    model: Any = None


def build_model(method: str, d_in: int, s: CompareSettings) -> Any:
    common = dict(d_in=d_in, n_latents=s.hidden, loss="mse", output_activation="sigmoid")
    if method in ("plain", "l2"):
        return Autoencoder(**common, code_activation="sigmoid")
    if method == "kl":
        return Autoencoder(
            **common,
            code_activation="sigmoid",
            sparsity="kl",
            sparsity_params={"rho": s.rho, "weight": s.kl_weight},
        )
    if method == "topk":
        return Autoencoder(
            **common,
            code_activation="linear",
            sparsity="topk",
            tied=True,  # as Makhzani & Frey: the decoder's atoms are the encoder's filters
            sparsity_params={"k": s.k, "alpha": s.alpha, "relu": False},
        )
    if method == "arora":
        return NeuralSparseCoding(
            SparseCodingConfig(d_in=d_in, n_latents=s.hidden, lr=s.arora_lr, target_l0=s.k)
        )
    raise ConfigError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")


def run_method(
    method: str, data: Any, s: CompareSettings, progress: bool | None = None, log: Any = None
) -> MethodResult:
    torch.manual_seed(s.seed)
    model = build_model(method, data.d_in, s)
    snaps = FilterSnapshots(snapshot_epochs(s.epochs, s.snapshots), n_atoms=s.n_atoms)
    val = data.val.x if len(data.val) else None
    t0 = time.perf_counter()
    cfg = TrainConfig(
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        seed=s.seed,
        weight_decay=s.weight_decay if method == "l2" else 0.0,
    )
    trainer = Trainer(model, cfg, callbacks=[snaps], progress=progress, log=log)
    history = trainer.fit(data.train.x, val).records
    seconds = time.perf_counter() - t0
    test = data.test if len(data.test) else data.val
    m = evaluate(model, test.x)
    m01 = evaluate(model, test.x, threshold=0.1)
    metrics = {
        "method": method,
        "test_mse": m["recon"],
        "l0": m["l0"],
        "l0_above_0.1": m01["l0"],
        "frac_inactive": m["frac_inactive"],
        "dead_latents": m["dead_latents"],
        "train_seconds": seconds,
        "parameters": int(sum(t.numel() for t in (*model.parameters(), *model.buffers()))),
    }
    return MethodResult(
        method, LABELS[method], describe(method, model, s), metrics, history, snaps.snapshots, model
    )


def describe(method: str, model: Any, s: CompareSettings) -> str:
    base = model.describe()
    budget = f"Trained {s.epochs} epochs, batch {s.batch_size}"
    if method == "arora":
        return f"{base}. {budget}, atoms initialised from centred training samples."
    extra = f", L2 weight decay {s.weight_decay:g} on the weights" if method == "l2" else ""
    return f"{base}. {budget}, Adam lr {s.lr:g}{extra}."


def run_compare(
    data: Any,
    settings: CompareSettings,
    out: str | Path,
    progress: bool | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train every method, write report.html + PNGs + results.json/csv into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for method in settings.methods:
        if log is not None:
            log(f"training {LABELS[method]} ...")
        results.append(run_method(method, data, settings, progress=progress))
        if log is not None:
            r = results[-1].metrics
            log(
                f"  test MSE {r['test_mse']:.4f}, L0 {r['l0']:.1f}, dead {r['dead_latents']}, "
                f"{r['train_seconds']:.1f}s"
            )
    return write_compare_report(data, settings, results, out)


#: results table and CSV: metric key -> column header
COLUMNS = {
    "method": "method",
    "test_mse": "test MSE",
    "l0": "L0 (h != 0)",
    "l0_above_0.1": "L0 (|h| > 0.1)",
    "frac_inactive": "fraction inactive",
    "dead_latents": "dead latents",
    "train_seconds": "train s",
    "parameters": "parameters",
}


def write_compare_report(
    data: Any, s: CompareSettings, results: list[MethodResult], out: Path
) -> dict[str, Any]:
    """report.html, the PNG figures, results.json and results.csv into ``out``; the summary."""
    report = Report(
        f"Five ways to sparse codes on {data.name}",
        f"{len(data.train)} training, {len(data.val)} validation, {len(data.test)} test "
        f"samples of {data.d_in} features; {s.hidden} hidden units; {s.epochs} epochs.",
    )
    figures = _summary_section(report, results, out)
    test = data.test if len(data.test) else data.val
    sample = np.asarray(test.x[:10])
    for r in results:
        figures.update(_method_section(report, r, data.image_shape, sample, s.n_atoms, out))
    report.write(out / "report.html")
    summary = {
        "dataset": data.name,
        "settings": {
            k: (list(v) if isinstance(v, tuple | list) else v) for k, v in vars(s).items()
        },
        "results": [r.metrics for r in results],
        "figures": figures,
        "report": str(out / "report.html"),
    }
    _write_numbers(summary, results, out)
    return summary


def _summary_section(report: Report, results: list[MethodResult], out: Path) -> dict[str, str]:
    """The table of every method's numbers and the learning curves; the figure written."""
    rows = [{**r.metrics, "method": r.label} for r in results]
    report.heading("Summary").table(rows, list(COLUMNS), list(COLUMNS.values()))
    report.paragraph(
        "L0 counts code entries that are exactly non-zero; sigmoid codes are never exactly 0, "
        "so the |h| > 0.1 column compares them fairly. Dead latents are silent for every "
        "test input; fraction inactive is per input, averaged.",
        "note",
    )
    curves = {r.label: [h.get("val_recon", h["recon"]) for h in r.history] for r in results}
    fig = viz.loss_curves(curves, "validation reconstruction MSE", "Learning curves")
    path = viz.save_png(fig, out / "loss_curves.png")
    report.figure(path, "Validation reconstruction error per epoch.")
    return {"loss_curves": str(path)}


def _method_section(
    report: Report,
    r: MethodResult,
    image_shape: Any,
    sample: np.ndarray,
    n_atoms: int,
    out: Path,
) -> dict[str, str]:
    """One method's description, filters over training and reconstructions of ``sample``;
    the figures written, by name."""
    figures: dict[str, str] = {}
    report.heading(r.label).paragraph(r.description)
    if r.snapshots:
        fig = viz.filter_progression(
            r.snapshots, image_shape, f"{r.label}: filters over training", n_atoms
        )
        path = viz.save_png(fig, out / f"filters_{r.name}.png")
        figures[f"filters_{r.name}"] = str(path)
        report.figure(
            path,
            f"The first {n_atoms} filters (dictionary atoms), "
            "contrast-normalised, at several epochs.",
        )
    recon = map_batches(r.model, sample, r.model).numpy()  # on the model's device
    fig = viz.reconstructions(sample, recon, image_shape, f"{r.label}: reconstructions")
    path = viz.save_png(fig, out / f"reconstructions_{r.name}.png")
    figures[f"reconstructions_{r.name}"] = str(path)
    report.figure(path, "Test images (top) and their reconstructions (bottom).")
    return figures


def _write_numbers(summary: dict[str, Any], results: list[MethodResult], out: Path) -> None:
    """results.json (everything) and results.csv (one row per method, the table's columns)."""
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for r in results:
            writer.writerow({c: r.metrics[c] for c in COLUMNS})
