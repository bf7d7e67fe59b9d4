"""Anomaly detection by reconstruction error, and the one-class evaluation protocol."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
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


def knn_distances(
    reference: np.ndarray, queries: np.ndarray, k: int, *, exclude_self: bool = False
) -> np.ndarray:
    """Mean Euclidean distance from each query row to its ``k`` nearest reference rows.

    ``exclude_self`` drops each query's nearest match: for queries that are themselves in
    the reference (the training rows), the leave-one-out distance, without which every
    training row would sit at distance 0 from itself. Chunked so that memory stays at
    2,048 x len(reference) distances whatever the number of queries."""
    ref = torch.as_tensor(np.ascontiguousarray(reference), dtype=torch.float32)
    q = torch.as_tensor(np.ascontiguousarray(queries), dtype=torch.float32)
    take = min(k + int(exclude_self), ref.shape[0])
    out = []
    for start in range(0, q.shape[0], 2048):
        d = torch.cdist(q[start : start + 2048], ref).topk(take, dim=1, largest=False).values
        out.append(d[:, int(exclude_self) :].mean(dim=1) if take > int(exclude_self) else d[:, 0])
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def error_features(x: np.ndarray, recon: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row reconstruction error in two complementary forms: ``mse`` (mean squared error,
    large for inputs the model cannot reproduce, but also for merely bright or textured
    ones) and ``cosine`` (1 - cosine similarity of input and reconstruction: blind to the
    row's norm, so it sees a wrong *shape* whatever the input's intensity)."""
    x = np.asarray(x, dtype=np.float64)
    r = np.asarray(recon, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(r, axis=1)
    cosine = 1.0 - (x * r).sum(axis=1) / np.maximum(norms, 1e-12)
    return {"mse": ((r - x) ** 2).mean(axis=1), "cosine": cosine}
