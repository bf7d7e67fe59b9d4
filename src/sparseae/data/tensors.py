"""Turning whatever a user hands the library into a float32 tensor, with clear errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparseae.errors import DataError


def as_tensor(x: Any, name: str = "x") -> Tensor:
    """Accept numpy arrays, tensors and objects with an ``x`` attribute (data.Split)."""
    if hasattr(x, "x") and not isinstance(x, Tensor | np.ndarray):
        x = x.x
    if isinstance(x, Tensor):
        t = x.detach().float()
    else:
        try:
            arr = np.ascontiguousarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} is not a numeric array ({exc})") from None
        t = torch.from_numpy(arr)
    if t.ndim < 2 or t.shape[0] == 0:
        raise DataError(
            f"{name} must be a non-empty array of shape (n_samples, ...), got {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} contains NaN or inf values: clean or impute them before training")
    return t


def check_features(x: Tensor, d_in: int, name: str = "x") -> None:
    """Refuse data whose feature count differs from the model's, naming both."""
    features = int(np.prod(x.shape[1:]))
    if features != d_in:
        raise DataError(
            f"{name} has {features} features per row but the model takes {d_in}: "
            "pass data of the shape it was trained on"
        )
