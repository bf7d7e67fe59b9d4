"""`sparse_encode`: codes of any rows on any dictionary, by any registered coder — the
scikit-learn ``sparse_encode`` call, on batched PyTorch kernels (CPU or GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparseae.coding.base import CODERS, CodingSpec
from sparseae.errors import DataError


def as_matrix(name: str, value: Any, dtype: torch.dtype = torch.float32) -> Tensor:
    """A finite 2-D float tensor, or a one-line DataError saying what is wrong."""
    if not isinstance(value, Tensor):
        try:
            arr = np.array(value)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} must be a numeric 2-D array ({exc})") from None
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{name} must be numeric, got values of dtype {arr.dtype}")
        value = torch.from_numpy(arr)
    t = value
    if t.ndim != 2:
        raise DataError(f"{name} must be 2-D (rows x features), got shape {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8)):
        raise DataError(f"{name} must be numeric, got dtype {t.dtype}")
    t = t.to(dtype)
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} contains NaN or inf: clean or impute it first")
    return t


def encode_rows(x: Tensor, dictionary: Tensor, algorithm: str, spec: CodingSpec) -> Tensor:
    """Codes (rows x atoms) of tensor rows on a tensor dictionary (atoms x features)."""
    coder = CODERS.get(algorithm)
    return coder(x @ dictionary.t(), dictionary @ dictionary.t(), spec)


def sparse_encode(
    X: Any,
    dictionary: Any,
    *,
    algorithm: str = "omp",
    n_nonzero_coefs: int | None = None,
    alpha: float | None = None,
    positive: bool = False,
    max_iter: int = 200,
    batch_size: int = 16384,
    device: str | torch.device | None = None,
) -> Any:
    """Sparse codes of the rows of ``X`` (n x d) on ``dictionary`` (atoms x d), as in
    scikit-learn: ``omp`` (``n_nonzero_coefs``, default a tenth of the atoms), ``lasso``
    (``alpha``, the objective ``0.5||x - hD||² + alpha||h||₁``), ``threshold``, ``topk``.
    Returns a NumPy array for NumPy input, a tensor (on ``device``) for tensor input."""
    x = as_matrix("X", X)
    d = as_matrix("dictionary", dictionary)
    if x.shape[1] != d.shape[1]:
        raise DataError(f"X has {x.shape[1]} features but the dictionary's atoms have {d.shape[1]}")
    dev = (
        torch.device(device)
        if device is not None
        else (X.device if isinstance(X, Tensor) else torch.device("cpu"))
    )
    spec = CodingSpec(n_nonzero_coefs, alpha, positive, max_iter)
    CODERS.get(algorithm)  # an unknown name fails before any work
    d = d.to(dev)
    with torch.no_grad():
        parts = [
            encode_rows(x[s : s + batch_size].to(dev), d, algorithm, spec)
            for s in range(0, x.shape[0], batch_size)
        ]
    codes = torch.cat(parts) if parts else x.new_zeros(0, d.shape[0])
    return codes if isinstance(X, Tensor) else codes.cpu().numpy()
