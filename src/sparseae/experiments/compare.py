"""The compare study: five ways to sparse codes on one dataset, one hidden size, one budget.

Methods (one shared single-hidden-layer architecture d_in -> H -> d_in, MSE on [0, 1] data,
sigmoid output):
- ``plain``: sigmoid code, no constraint;
- ``l2``: the same with L2 weight decay on the weights (an optimiser setting);
- ``kl``: sigmoid code with the KL penalty to a target rate rho of Andrew Ng's CS294A notes
  "Sparse autoencoder" (the notes add a weight decay of 1e-4 on a summed squared error; on
  sparseae's mean-per-pixel scale that is about 3e-7, negligible, so it is left out);
- ``arora``: neural sparse coding of Arora, Ge, Ma & Moitra, "Simple, Efficient, and Neural
  Algorithms for Sparse Coding" (COLT 2015), no backpropagation;
- ``topk``: Makhzani & Frey's "k-Sparse Autoencoders" (ICLR 2014): linear code, the k
  largest kept, alpha*k at inference.

Each method is warmed up (untimed), trained and timed, its filters snapshotted over training
and, with ``sweep``, retrained at two more values of its sparsity knob; the results go to one
self-contained HTML report (`sparseae.experiments.compare_report`) plus PNG figures and
JSON/CSV numbers.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparseae.errors import ConfigError
from sparseae.experiments.compare_report import COLUMNS, write_compare_report
from sparseae.experiments.settings import (
    LABELS,
    METHODS,
    SWEEP_KNOBS,
    WARMUP_ROWS,
    CompareSettings,
    sweep_values,
)
from sparseae.models.autoencoder.model import Autoencoder
from sparseae.models.sparse_coding import NeuralSparseCoding, SparseCodingConfig
from sparseae.training.callbacks import FilterSnapshots, snapshot_epochs
from sparseae.training.config import TrainConfig
from sparseae.training.evaluate import evaluate
from sparseae.training.trainer import Trainer

__all__ = ["COLUMNS", "LABELS", "CompareSettings", "MethodResult", "run_compare"]
__all__ += ["run_method", "sweep_method", "warm_up", "write_compare_report"]


@dataclass
class MethodResult:
    name: str
    label: str
    description: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)
    model: Any = None
    #: the sweep's points (knob value + metrics), the main run among them; empty without it
    sweep: list[dict[str, Any]] = field(default_factory=list)


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


def _train_config(method: str, s: CompareSettings, epochs: int | None = None) -> TrainConfig:
    return TrainConfig(
        epochs=epochs or s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        seed=s.seed,
        weight_decay=s.weight_decay if method == "l2" else 0.0,
    )


def warm_up(method: str, data: Any, s: CompareSettings) -> None:
    """One untimed epoch on a few rows, thrown away: PyTorch's first call of each kernel,
    allocator and optimiser path costs far more than later ones, and without this the method
    trained first would be charged for it (the plain AE looked 10x slower than L2)."""
    state = torch.random.get_rng_state()
    model = build_model(method, data.d_in, s)
    val = data.val.x[:WARMUP_ROWS] if len(data.val) else None  # the evaluation path too
    Trainer(model, _train_config(method, s, epochs=1), progress=False).fit(
        data.train.x[:WARMUP_ROWS], val
    )
    torch.random.set_rng_state(state)


def measure(model: Any, data: Any) -> dict[str, Any]:
    """Test-set reconstruction and code statistics (validation set when there is no test)."""
    test = data.test if len(data.test) else data.val
    m = evaluate(model, test.x)
    m01 = evaluate(model, test.x, threshold=0.1)
    return {
        "test_mse": m["recon"],
        "l0": m["l0"],
        "l0_above_0.1": m01["l0"],
        "frac_inactive": m["frac_inactive"],
        "dead_latents": m["dead_latents"],
    }


def epoch_seconds(history: list[dict[str, Any]]) -> float:
    """Median training time of an epoch, the first left out (it still pays for lazy set-up
    such as data-dependent initialisation); validation time is not included."""
    times = [h["seconds"] for h in history]
    return float(statistics.median(times[1:] if len(times) > 1 else times))


def run_method(
    method: str, data: Any, s: CompareSettings, progress: bool | None = None, log: Any = None
) -> MethodResult:
    warm_up(method, data, s)
    torch.manual_seed(s.seed)
    model = build_model(method, data.d_in, s)
    snaps = FilterSnapshots(snapshot_epochs(s.epochs, s.snapshots), n_atoms=s.n_atoms)
    val = data.val.x if len(data.val) else None
    t0 = time.perf_counter()
    trainer = Trainer(
        model, _train_config(method, s), callbacks=[snaps], progress=progress, log=log
    )
    history = trainer.fit(data.train.x, val).records
    seconds = time.perf_counter() - t0
    metrics = {
        "method": method,
        **measure(model, data),
        "train_seconds": seconds,
        "epoch_seconds": epoch_seconds(history),
        "parameters": int(sum(t.numel() for t in (*model.parameters(), *model.buffers()))),
    }
    return MethodResult(
        method, LABELS[method], describe(method, model, s), metrics, history, snaps.snapshots, model
    )


def sweep_method(method: str, data: Any, s: CompareSettings, main: MethodResult) -> list[dict]:
    """The method at each value of its sparsity knob (`settings.sweep_values`): the main run
    is reused for the value it was trained at, the others are trained without snapshots or
    validation. A method without a knob (plain) is its main run alone."""
    point = {k: main.metrics[k] for k in ("test_mse", "l0", "l0_above_0.1", "dead_latents")}
    if method not in SWEEP_KNOBS:
        return [{"method": method, "knob": None, "value": None, **point}]
    setting, knob = SWEEP_KNOBS[method]
    points = []
    for value in sweep_values(method, s):
        if value == getattr(s, setting):
            metrics = point
        else:
            varied = dataclasses.replace(s, **{setting: value})
            torch.manual_seed(s.seed)
            model = build_model(method, data.d_in, varied)
            Trainer(model, _train_config(method, varied), progress=False).fit(data.train.x)
            metrics = {k: v for k, v in measure(model, data).items() if k in point}
        points.append({"method": method, "knob": knob, "value": value, **metrics})
    return points


def describe(method: str, model: Any, s: CompareSettings) -> str:
    base = model.describe()
    budget = f"Trained {s.epochs} epochs, batch {s.batch_size}"
    if method == "arora":
        return f"{base}. {budget}, atoms initialised from centred training samples."
    extra = f", L2 weight decay {s.weight_decay:g} on the weights" if method == "l2" else ""
    return f"{base}. {budget}, Adam lr {s.lr:g}{extra}."


def _log_result(log: Callable[[str], Any] | None, r: MethodResult) -> None:
    if log is None:
        return
    m = r.metrics
    log(
        f"  test MSE {m['test_mse']:.4f}, L0 {m['l0']:.1f} (|h| > 0.1: {m['l0_above_0.1']:.1f}), "
        f"dead {m['dead_latents']}, {m['train_seconds']:.1f}s"
    )
    for p in r.sweep:
        if p["knob"]:
            log(
                f"  sweep {p['knob']} {p['value']:g}: test MSE {p['test_mse']:.4f}, "
                f"L0 (|h| > 0.1) {p['l0_above_0.1']:.1f}, dead {p['dead_latents']}"
            )


def run_compare(
    data: Any,
    settings: CompareSettings,
    out: str | Path,
    progress: bool | None = None,
    log: Any = None,
    *,
    dataset_label: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Train every method (and its sweep), write report.html + PNGs + results.json/csv into
    ``out``; ``dataset_label`` names the data in the title (e.g. the file's name),
    ``command`` is the command line recorded in the footer."""
    results = []
    for method in settings.methods:
        if log is not None:
            log(f"training {LABELS[method]} ...")
        result = run_method(method, data, settings, progress=progress)
        if settings.sweep:
            result.sweep = sweep_method(method, data, settings, result)
        results.append(result)
        _log_result(log, result)
    return write_compare_report(
        data, settings, results, Path(out), dataset_label=dataset_label, command=command
    )
