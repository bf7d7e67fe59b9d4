"""One-step coders on the projections ``X Dᵀ``: as cheap as an SAE's encoder, and the
baseline the iterative coders are measured against.

- ``threshold``: scikit-learn's rule, keep the projections whose magnitude exceeds ``alpha``
  and shrink them by ``alpha`` (a soft threshold).
- ``topk``: keep the ``n_nonzero_coefs`` largest-magnitude projections unchanged — a TopK
  SAE's encoder with tied weights; on a far-from-orthogonal dictionary it is the least
  accurate, which is why OMP exists.
"""

from __future__ import annotations

from torch import Tensor

from sparseae.coding.base import CODERS, CodingSpec
from sparseae.coding.lasso import soft_threshold


@CODERS.register("threshold")
def _threshold(cov: Tensor, gram: Tensor, spec: CodingSpec) -> Tensor:
    return soft_threshold(cov, spec.need_alpha("threshold"), spec.positive)


@CODERS.register("topk")
def _topk(cov: Tensor, gram: Tensor, spec: CodingSpec) -> Tensor:
    k = spec.need_k("topk", gram.shape[0])
    score = cov.clamp_min(0.0) if spec.positive else cov.abs()
    idx = score.topk(k, dim=1).indices
    vals = cov.gather(1, idx)
    if spec.positive:
        vals = vals.clamp_min(0.0)
    return cov.new_zeros(cov.shape).scatter_(1, idx, vals)
