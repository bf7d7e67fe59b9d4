"""Batched lasso codes by FISTA (Beck and Teboulle 2009), in the Gram form.

Solves, for every row x of the batch, ``min_h 0.5 ||x - h D||² + alpha ||h||_1`` — the
objective scikit-learn's ``sparse_encode(algorithm="lasso_cd" / "lasso_lars", alpha=...)``
solves (it scales by 1/n_features on both terms), so the same ``alpha`` gives the same codes.
All rows advance together: one iteration is one (rows x atoms) @ (atoms x atoms) product, so
the cost is a few matrix products instead of scikit-learn's per-row coordinate descent.
The step size is 1/L with L the largest eigenvalue of the Gram matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparseae.coding.base import CODERS, CodingSpec, map_chunks

#: rows per chunk: each chunk converges (and stops) on its own, in parallel with the others
_ROWS = 256


def lipschitz(gram: Tensor) -> float:
    """The largest eigenvalue of the (symmetric, positive semi-definite) Gram matrix."""
    return float(torch.linalg.eigvalsh(gram.double())[-1].clamp_min(1e-12))


def soft_threshold(v: Tensor, tau: float, positive: bool = False) -> Tensor:
    """One fused kernel (softshrink), not four elementwise passes: in FISTA on a CPU the
    elementwise work costs as much as the (rows x atoms) @ (atoms x atoms) product."""
    if positive:
        return torch.relu(v - tau)
    return torch.nn.functional.softshrink(v, tau)


def fista_gram(
    cov: Tensor,
    gram: Tensor,
    alpha: float,
    *,
    max_iter: int = 200,
    tol: float = 1e-4,
    positive: bool = False,
    init: Tensor | None = None,
    lipschitz_constant: float | None = None,
) -> Tensor:
    """Dense codes (n x m) from ``cov = X Dᵀ`` and ``gram = D Dᵀ``. Stops when the largest
    relative change of the codes over an iteration falls below ``tol`` (checked every 10
    iterations, so the check costs little)."""
    step = 1.0 / (lipschitz_constant or lipschitz(gram))
    h = cov.new_zeros(cov.shape) if init is None else init.clone()
    y, t = h.clone(), 1.0
    step_cov = step * cov
    for it in range(max_iter):
        # the gradient step y - step (y G - cov) as one product-and-add
        h_next = soft_threshold(
            torch.addmm(y + step_cov, y, gram, alpha=-step), alpha * step, positive
        )
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        y = torch.add(h_next, h_next - h, alpha=(t - 1.0) / t_next)
        if it % 10 == 9:
            change = float((h_next - h).abs().max()) / max(float(h_next.abs().max()), 1e-12)
            if change < tol:
                return h_next
        h, t = h_next, t_next
    return h


@CODERS.register("lasso")
def _lasso(cov: Tensor, gram: Tensor, spec: CodingSpec) -> Tensor:
    alpha = spec.need_alpha("lasso")
    lip = lipschitz(gram)  # once for all chunks
    chunks = [cov[s : s + _ROWS] for s in range(0, cov.shape[0], _ROWS)]
    parts = map_chunks(
        lambda c: fista_gram(
            c,
            gram,
            alpha,
            max_iter=spec.max_iter,
            tol=spec.tol,
            positive=spec.positive,
            lipschitz_constant=lip,
        ),
        chunks,
        spec.workers,
    )
    return torch.cat(parts)
