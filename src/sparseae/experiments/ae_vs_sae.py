"""Undercomplete vs sparse: an undercomplete AE and the same network with an L1 activity
penalty on the bottleneck; which bottleneck neurons fire for one test image per class."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparseae.atomic import atomic_write_text
from sparseae.errors import ConfigError
from sparseae.models.autoencoder.model import Autoencoder
from sparseae.report import figures as viz
from sparseae.report.html import Report
from sparseae.training.config import TrainConfig
from sparseae.training.evaluate import evaluate, map_batches
from sparseae.training.trainer import Trainer


@dataclass
class AEvsSAESettings:
    hidden: tuple[int, ...] = (64, 16)
    l1: float = 1e-3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.hidden:
            raise ConfigError("hidden needs at least the bottleneck size, e.g. 64,16")


def one_per_class(split: Any) -> tuple[np.ndarray, list[str]]:
    if split.y is None:
        raise ConfigError("ae-vs-sae needs a labelled dataset (one test image per class)")
    classes = sorted(int(c) for c in np.unique(split.y))
    idx = [int(np.flatnonzero(split.y == c)[0]) for c in classes]
    return np.asarray(split.x[idx]), [str(c) for c in classes]


def _variants(s: AEvsSAESettings) -> list[tuple[str, str, dict[str, Any]]]:
    """The study's two models, (name, sparsity, parameters): they differ in nothing else."""
    return [("undercomplete AE", "none", {}), ("sparse AE (L1)", "l1", {"weight": s.l1})]


#: results table: row key -> column header
COLUMNS = {
    "model": "model",
    "test_mse": "test MSE",
    "inactive_per_input": "inactive neurons per input",
    "dead_for_every_input": "dead for every input",
    "inactive_in_heatmap": "zeros in heatmap",
    "train_seconds": "train s",
}


@dataclass
class _Run:
    """One trained variant: its model, its row of the results table, its heatmap panel."""

    name: str
    model: Autoencoder
    row: dict[str, Any]
    panel: np.ndarray
    history: list[dict[str, Any]]


def run_ae_vs_sae(
    data: Any, s: AEvsSAESettings, out: str | Path, progress: bool | None = None, log: Any = None
) -> dict[str, Any]:
    """Train both variants, write report.html, the figures and results.json into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    test = data.test if len(data.test) else data.val
    xs, labels = one_per_class(test)
    runs = []
    for name, sparsity, params in _variants(s):
        run = _train_variant(name, sparsity, params, data, test.x, xs, s, progress)
        runs.append(run)
        if log is not None:
            log(
                f"{name}: test MSE {run.row['test_mse']:.4f}, inactive per input "
                f"{run.row['inactive_per_input']:.2f} of {s.hidden[-1]}"
            )
    rows = [r.row for r in runs]
    ratio = rows[1]["inactive_per_input"] / max(rows[0]["inactive_per_input"], 1e-9)
    figures = _write_report(data, runs, labels, ratio, out)
    summary = {
        "dataset": data.name,
        "rows": rows,
        "ratio_inactive": ratio,
        "report": str(out / "report.html"),
        "figures": [str(f) for f in figures],
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    return summary


def _train_variant(
    name: str,
    sparsity: str,
    params: dict[str, Any],
    data: Any,
    test_x: Any,
    xs: np.ndarray,
    s: AEvsSAESettings,
    progress: bool | None,
) -> _Run:
    """Train one variant from the shared seed, then measure it on the test split."""
    *inner, code = s.hidden
    torch.manual_seed(s.seed)
    model = Autoencoder(
        d_in=data.d_in,
        hidden=tuple(inner),
        n_latents=code,
        activation="relu",
        code_activation="relu",
        loss="mse",
        sparsity=sparsity,
        sparsity_params=params,
    )
    cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=s.seed)
    trainer = Trainer(model, cfg, progress=progress)
    val = data.val.x if len(data.val) else None
    history = trainer.fit(data.train.x, val).records
    m = evaluate(model, test_x)  # on the model's device, wherever the trainer left it
    panel = map_batches(model, xs, model.encode).numpy()
    row = {
        "model": name,
        "test_mse": m["recon"],
        "inactive_per_input": code - m["l0"],
        "dead_for_every_input": m["dead_latents"],
        "inactive_in_heatmap": int((panel == 0).sum()),
        "train_seconds": trainer.train_seconds,
    }
    return _Run(name, model, row, panel, history)


def _write_report(
    data: Any, runs: list[_Run], labels: list[str], ratio: float, out: Path
) -> list[Path]:
    """report.html with the heatmaps, the table and the learning curves; the figures' paths."""
    code = runs[0].model.n_latents
    fig = viz.activation_heatmaps(
        {r.name: r.panel for r in runs},
        labels,
        f"Bottleneck activations on {data.name} ({code} neurons)",
    )
    heat = viz.save_png(fig, out / "bottleneck_heatmaps.png")
    report = Report(
        f"Undercomplete vs sparse autoencoder on {data.name}",
        "Undercomplete vs sparse: the same network with and without an L1 activity "
        "penalty on the bottleneck.",
    )
    report.heading("Which bottleneck neurons fire").figure(
        heat, "Rows: bottleneck neurons; columns: one test image per class; white: exactly 0."
    )
    report.table([r.row for r in runs], list(COLUMNS), list(COLUMNS.values()))
    report.paragraph(
        f"The sparse AE leaves {ratio:.1f}x as many bottleneck neurons inactive per test input "
        f"as the undercomplete AE. 'Dead for every input' counts neurons silent on the whole "
        f"test set; 'inactive per input' also counts neurons silent only for that input."
    )
    for r in runs:
        report.paragraph(f"{r.name}: {r.model.describe()}.", "note")
    curves = {r.name: [h.get("val_recon", h["recon"]) for h in r.history] for r in runs}
    loss = viz.save_png(
        viz.loss_curves(curves, "reconstruction MSE", "Learning curves"), out / "loss_curves.png"
    )
    report.figure(loss, "Validation reconstruction error per epoch.")
    report.write(out / "report.html")
    return [heat, loss]
