"""Small shared test data: scikit-learn's bundled digits (no download), as float32 in [0, 1]."""

from __future__ import annotations

import functools

import numpy as np
import torch


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits(n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _digits()
    if n is not None:
        x, y = x[:n], y[:n]
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
