"""`sparse_encode`: codes of any rows on any dictionary, by any registered coder — the
scikit-learn ``sparse_encode`` call, on batched PyTorch kernels (CPU or GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparseae.coding.base import CODERS, CodingSpec
from sparseae.data.tensors import as_tensor
from sparseae.errors import DataError


def as_matrix(name: str, value: Any) -> Tensor:
    """A finite 2-D float32 tensor (`data.tensors.as_tensor`), or a one-line DataError; text
    is refused by name first, since NumPy's own message for it is a parse error."""
    if not isinstance(value, Tensor):
        try:
            kind = np.asarray(value).dtype.kind
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} must be a numeric 2-D array ({exc})") from None
        if kind not in "biuf":
            raise DataError(
                f"{name} must be numeric, got values of dtype {np.asarray(value).dtype}"
            )
    t = as_tensor(value, name)
    if t.ndim != 2:
        raise DataError(f"{name} must be 2-D (rows x features), got shape {tuple(t.shape)}")
    return t


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
    coder = CODERS.get(algorithm)  # an unknown name fails before any work
    d = d.to(dev)
    with torch.no_grad():
        gram = d @ d.t()  # once, not per batch of rows
        parts = [
            coder(x[s : s + batch_size].to(dev) @ d.t(), gram, spec)
            for s in range(0, x.shape[0], batch_size)
        ]
    codes = torch.cat(parts)  # as_tensor refused an empty X
    return codes if isinstance(X, Tensor) else codes.cpu().numpy()
