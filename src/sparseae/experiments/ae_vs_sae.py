"""Document 000's study: an undercomplete AE and the same network with an L1 activity
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


def run_ae_vs_sae(
    data: Any, s: AEvsSAESettings, out: str | Path, progress: bool | None = None, log: Any = None
) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    *inner, code = s.hidden
    test = data.test if len(data.test) else data.val
    xs, labels = one_per_class(test)
    models, rows, panels, histories = {}, [], {}, {}
    for name, sparsity, params in (
        ("undercomplete AE", "none", {}),
        ("sparse AE (L1)", "l1", {"weight": s.l1}),
    ):
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
        histories[name] = trainer.fit(data.train.x, val).records
        with torch.no_grad():
            h_all = model.encode(torch.as_tensor(test.x))
            mse = float(((model.decode(h_all) - torch.as_tensor(test.x)) ** 2).mean())
            panels[name] = model.encode(torch.as_tensor(xs)).numpy()
        rows.append(
            {
                "model": name,
                "test_mse": mse,
                "inactive_per_input": float((h_all == 0).sum(dim=1).float().mean()),
                "dead_for_every_input": int(((h_all != 0).sum(dim=0) == 0).sum()),
                "inactive_in_heatmap": int((panels[name] == 0).sum()),
                "train_seconds": trainer.train_seconds,
            }
        )
        models[name] = model
        if log is not None:
            log(
                f"{name}: test MSE {mse:.4f}, inactive per input "
                f"{rows[-1]['inactive_per_input']:.2f} of {code}"
            )
    ratio = rows[1]["inactive_per_input"] / max(rows[0]["inactive_per_input"], 1e-9)
    fig = viz.activation_heatmaps(
        panels, labels, f"Bottleneck activations on {data.name} ({code} neurons)"
    )
    heat = viz.save_png(fig, out / "bottleneck_heatmaps.png")
    report = Report(
        f"Undercomplete vs sparse autoencoder on {data.name}",
        "Document 000's study: the same network with and without an L1 activity "
        "penalty on the bottleneck.",
    )
    report.heading("Which bottleneck neurons fire").figure(
        heat, "Rows: bottleneck neurons; columns: one test image per class; white: exactly 0."
    )
    report.table(
        rows,
        [
            "model",
            "test_mse",
            "inactive_per_input",
            "dead_for_every_input",
            "inactive_in_heatmap",
            "train_seconds",
        ],
        [
            "model",
            "test MSE",
            "inactive neurons per input",
            "dead for every input",
            "zeros in heatmap",
            "train s",
        ],
    )
    report.paragraph(
        f"The sparse AE leaves {ratio:.1f}x as many bottleneck neurons inactive per test input "
        f"as the undercomplete AE. 'Dead for every input' counts neurons silent on the whole "
        f"test set; 'inactive per input' also counts neurons silent only for that input."
    )
    for name, model in models.items():
        report.paragraph(f"{name}: {model.describe()}.", "note")
    curves = {name: [r.get("val_recon", r["recon"]) for r in h] for name, h in histories.items()}
    loss = viz.save_png(
        viz.loss_curves(curves, "reconstruction MSE", "Learning curves"), out / "loss_curves.png"
    )
    report.figure(loss, "Validation reconstruction error per epoch.")
    report.write(out / "report.html")
    summary = {
        "dataset": data.name,
        "rows": rows,
        "ratio_inactive": ratio,
        "report": str(out / "report.html"),
        "figures": [str(heat), str(loss)],
    }
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2))
    return summary
