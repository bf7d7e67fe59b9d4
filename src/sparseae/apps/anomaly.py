"""Anomaly detection by reconstruction error, and the one-class evaluation protocol."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from sparseae.training.evaluate import map_batches


def reconstruction_errors(model: Any, x: Any, batch_size: int = 4096) -> np.ndarray:
    """Per-sample mean squared reconstruction error (eval mode: no corruption)."""

    def errors(xb: Tensor) -> Tensor:
        return ((model(xb) - xb.reshape(xb.shape[0], -1)) ** 2).mean(dim=1)

    return map_batches(model, x, errors, batch_size=batch_size).numpy()


def threshold_from_errors(
    errors: np.ndarray, *, contamination: float | None = None, n_std: float | None = None
) -> float:
    """The mean + k·std rule (here mean + n_std x std), or the (1 - contamination) quantile."""
    if (contamination is None) == (n_std is None):
        from sparseae.errors import ConfigError

        raise ConfigError("give exactly one of contamination or n_std")
    if n_std is not None:
        return float(errors.mean() + n_std * errors.std())
    return float(np.quantile(errors, 1 - contamination))


def auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_anomaly, scores))
