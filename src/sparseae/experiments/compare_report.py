"""The compare study's report: verdict, table with the best cells marked, the error-vs-L0
trade-off, learning curves and one section per method, plus results.json / results.csv.

Kept apart from the training code (`sparseae.experiments.compare`) so a report can be
rebuilt, or tested, from results alone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.atomic import atomic_write_text
from sparseae.experiments import verdict
from sparseae.experiments.settings import (
    LABELS,
    REFERENCES,
    SHORT,
    WARMUP_ROWS,
    CompareSettings,
)
from sparseae.report import figures as viz
from sparseae.report.html import Report
from sparseae.report.provenance import provenance

#: results table and CSV: metric key -> column header
COLUMNS = {
    "method": "method",
    "test_mse": "test MSE",
    "l0": "L0 (h != 0)",
    "l0_above_0.1": "L0 (|h| > 0.1)",
    "frac_inactive": "fraction inactive",
    "dead_latents": "dead latents",
    "train_seconds": "train s",
    "epoch_seconds": "s / epoch (median)",
    "parameters": "parameters",
}


def report_title(methods: Sequence[str], dataset: str) -> str:
    """The title from the methods actually run and the data's name."""
    if len(methods) == 1:
        return f"{LABELS[methods[0]][0].upper()}{LABELS[methods[0]][1:]} on {dataset}"
    names = [SHORT[m] for m in methods]
    return f"Sparse coding on {dataset}: {', '.join(names[:-1])} and {names[-1]} compared"


def write_compare_report(
    data: Any,
    s: CompareSettings,
    results: list[Any],
    out: Path,
    *,
    dataset_label: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """report.html, the PNG figures, results.json and results.csv into ``out``; the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: (list(v) if isinstance(v, tuple | list) else v) for k, v in vars(s).items()}
    facts = provenance(command=command, seed=s.seed, settings=settings)
    report = Report(
        report_title(list(s.methods), dataset_label or data.name),
        f"{len(data.train)} training, {len(data.val)} validation, {len(data.test)} test "
        f"samples of {data.d_in} features; {s.hidden} latents; {s.epochs} epochs.",
        provenance=facts,
    )
    rows = [r.metrics for r in results]
    points = [p for r in results for p in r.sweep]
    headline = verdict.headline(rows, LABELS, s.k, s.hidden)
    frontier = verdict.frontier_text(points, SHORT) if points else ""
    report.paragraph(headline, "verdict")
    _summary_section(report, results, s)
    figures = dict(_tradeoff_section(report, results, points, frontier, s, out))
    figures.update(_curves_section(report, results, out))
    test = data.test if len(data.test) else data.val
    sample = np.asarray(test.x[:10])
    for r in results:
        figures.update(_method_section(report, r, data.image_shape, sample, out))
    report.write(out / "report.html")
    summary = {
        "dataset": dataset_label or data.name,
        "settings": settings,
        "verdict": headline,
        "frontier": frontier,
        "results": rows,
        "sweep": points,
        "figures": figures,
        "provenance": facts,
        "report": str(out / "report.html"),
    }
    _write_numbers(summary, out)
    return summary


def _summary_section(report: Report, results: list[Any], s: CompareSettings) -> None:
    """The table of every method's numbers, its best cells marked, and how to read it."""
    metrics = [r.metrics for r in results]
    rows = [{**r.metrics, "method": r.label} for r in results]
    marks = verdict.best_cells(metrics, s.k)
    report.heading("Summary")
    report.table(rows, list(COLUMNS), list(COLUMNS.values()), marks=marks)
    report.paragraph(verdict.rule_text(s.k), "note")
    report.paragraph(
        "L0 counts code entries per input: exactly non-zero, or above 0.1 in magnitude; sigmoid "
        "codes are never exactly 0, so the |h| > 0.1 column compares them fairly. Dead latents "
        "are silent for every test input; fraction inactive is per input, averaged.",
        "note",
    )
    report.paragraph(
        f"Timing: before its timed run each method trains one untimed warm-up epoch on "
        f"{WARMUP_ROWS} training rows (and validates on as many), thrown away, so the method run "
        "first is not charged PyTorch's one-time start-up costs. 'train s' is the timed run's "
        f"wall time ({s.epochs} epochs, validation after each epoch included); 's / epoch' is "
        "the median training time of an epoch, the first epoch and validation left out. Times "
        "are wall clock on the machine named in the footer; other load on it shows in them.",
        "note",
    )


def _tradeoff_section(
    report: Report,
    results: list[Any],
    points: list[dict[str, Any]],
    frontier: str,
    s: CompareSettings,
    out: Path,
) -> dict[str, str]:
    """Reconstruction error against L0, one curve per method over its sweep (or one point
    per method without the sweep), and the sweep's numbers as a table."""
    curves = {}
    for r in results:
        pts = r.sweep or [{"knob": None, "value": None, **r.metrics}]
        knob = _knob(r.sweep)
        curves[f"{SHORT[r.name]} ({knob})" if knob else SHORT[r.name]] = [
            _plot_point(p) for p in pts
        ]
    limit = verdict.MATCH_FACTOR * s.k
    title = "Reconstruction error vs sparsity" + (" (sweep)" if points else "")
    fig = viz.tradeoff(curves, title, n_latents=s.hidden, reference=s.k, limit=limit)
    path = viz.save_png(fig, out / "tradeoff.png")
    report.heading("Trade-off: reconstruction error against sparsity")
    swept = ", ".join(f"{SHORT[r.name]} over {_knob(r.sweep)}" for r in results if _knob(r.sweep))
    fixed = [SHORT[r.name] for r in results if not _knob(r.sweep)]
    how = (
        f"Each method is trained at three values of its sparsity knob ({swept})"
        + (f"; {' and '.join(fixed)} has no knob: one point." if fixed else ".")
        if points
        else "One point per method (run with --sweep for a curve per method)."
    )
    report.figure(
        path,
        f"Test MSE against L0 (latents with |h| > 0.1 per input), both log scale. {how} "
        "Points are labelled with the knob's value; marker area grows with the number of dead "
        "latents (also written next to the point); "
        f"the shaded band is the sparsity compared on MSE (L0 ≤ {limit:g}), lower-left is better.",
    )
    if points:
        front = set(verdict.pareto(points))
        rows = [{**p, "method": LABELS[p["method"]], "knob": p["knob"] or "-",
                 "value": "-" if p["value"] is None else p["value"]} for p in points]  # fmt: skip
        cols = ["method", "knob", "value", "test_mse", "l0_above_0.1", "dead_latents"]
        heads = ["method", "knob", "value", "test MSE", "L0 (|h| > 0.1)", "dead latents"]
        report.paragraph(frontier)
        report.table(rows, cols, heads, marks={"test_mse": front})
        report.paragraph("Bold: runs on the frontier (no other run is sparser and better).", "note")
    return {"tradeoff": str(path)}


def _knob(sweep: list[dict[str, Any]]) -> str:
    return next((p["knob"] for p in sweep if p.get("knob")), "")


def _plot_point(p: dict[str, Any]) -> dict[str, Any]:
    tag = f"{p['value']:g}" if p.get("knob") else ""
    if p.get("dead_latents"):
        tag += f"{' · ' if tag else ''}{p['dead_latents']} dead"
    return {"l0": p["l0_above_0.1"], "test_mse": p["test_mse"],
            "dead_latents": p.get("dead_latents", 0), "tag": tag}  # fmt: skip


def _curves_section(report: Report, results: list[Any], out: Path) -> dict[str, str]:
    curves = {r.label: [h.get("val_recon", h["recon"]) for h in r.history] for r in results}
    fig = viz.loss_curves(curves, "validation reconstruction MSE", "Learning curves")
    path = viz.save_png(fig, out / "loss_curves.png")
    report.heading("Learning curves")
    report.figure(path, "Validation reconstruction error per epoch (training error without it).")
    return {"loss_curves": str(path)}


def _method_section(
    report: Report, r: Any, image_shape: Any, sample: np.ndarray, out: Path
) -> dict[str, str]:
    """One method's description, paper, filters over training and reconstructions of
    ``sample``: tiles for images, heatmaps and bar plots for other data; the figures written."""
    from sparseae.training.evaluate import map_batches

    figures: dict[str, str] = {}
    report.heading(r.label).paragraph(r.description).paragraph(REFERENCES[r.name], "note")
    if r.snapshots:
        n = r.snapshots[0][1].shape[0]
        title = f"{r.label}: filters over training"
        if image_shape is not None:
            fig = viz.filter_progression(r.snapshots, image_shape, title, n)
            how = "contrast-normalised, as images"
        else:
            fig = viz.atom_heatmaps(r.snapshots, title, n)
            how = "one row per atom, each scaled by its largest weight"
        path = viz.save_png(fig, out / f"filters_{r.name}.png")
        figures[f"filters_{r.name}"] = str(path)
        epochs = ", ".join(str(e) for e, _ in r.snapshots)
        first = "All" if n == r.model.n_latents else f"The first {n} of"
        report.figure(
            path,
            f"{first} {r.model.n_latents} filters (dictionary atoms), {how}, at epochs {epochs}.",
        )
    recon = map_batches(r.model, sample, r.model).numpy()  # on the model's device
    title = f"{r.label}: reconstructions"
    if image_shape is not None:
        fig = viz.reconstructions(sample, recon, image_shape, title)
        caption = f"{len(sample)} test images (top) and their reconstructions (bottom)."
    else:
        fig = viz.vector_reconstructions(sample, recon, title)
        caption = f"{len(sample)} test inputs (grey bars) and their reconstructions (orange)."
    path = viz.save_png(fig, out / f"reconstructions_{r.name}.png")
    figures[f"reconstructions_{r.name}"] = str(path)
    report.figure(path, caption)
    return figures


def _write_numbers(summary: dict[str, Any], out: Path) -> None:
    """results.json (everything) and results.csv (one row per method, the table's columns)."""
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for r in summary["results"]:
            writer.writerow({c: r.get(c, "") for c in COLUMNS})
