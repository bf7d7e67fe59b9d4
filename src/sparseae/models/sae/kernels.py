"""Sparse kernels of the dictionary SAE's TopK-family path: nothing of size (batch x
latents) enters autograd.

The encoder is one dense matmul computed without autograd; only the kept (row, latent)
entries are gathered as differentiable values by `GatherEncode`, whose backward is a sparse
(nnz x d) product; the decoder is an ``embedding_bag`` over the kept latents, whose backward
touches only those rows of W_dec. Decoder and encoder-gradient costs thus scale with k
instead of n_latents.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F


class GatherEncode(torch.autograd.Function):
    """values = pre[rows, cols] of pre = (x - b_dec) @ W_enc + b_enc, pre given precomputed.

    Backward costs nnz*d instead of the dense path's B*n*d: W_enc's gradient is a sparse
    (n, B) x (B, d) product, and b_dec's is -W_enc @ grad(b_enc) (the batch sum of the
    input gradient, so no (B, d) input gradient is formed unless x itself needs one)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        b_dec: Tensor,
        w_enc: Tensor,
        b_enc: Tensor,
        pre: Tensor,
        rows: Tensor,
        cols: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(x, b_dec, w_enc, rows, cols)
        return pre[rows, cols]

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x, b_dec, w_enc, rows, cols = ctx.saved_tensors
        n, batch = w_enc.shape[1], x.shape[0]
        g = g.to(x.dtype)
        grad_x = grad_bdec = grad_w = grad_b = None
        if ctx.needs_input_grad[2]:
            gt = torch.sparse_coo_tensor(
                torch.stack([cols, rows]), g, (n, batch), check_invariants=False
            )
            grad_w = torch.sparse.mm(gt, x - b_dec).t()
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[3]:
            grad_b = torch.zeros(n, dtype=g.dtype, device=g.device).index_add_(0, cols, g)
            if ctx.needs_input_grad[1]:
                grad_bdec = -(w_enc @ grad_b)
            if not ctx.needs_input_grad[3]:
                grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(
                cols,
                w_enc.t().contiguous(),
                offsets(rows, batch),
                mode="sum",
                per_sample_weights=g,
            )
        return grad_x, grad_bdec, grad_w, grad_b, None, None, None


def offsets(rows: Tensor, batch: int) -> Tensor:
    """embedding_bag offsets of the bags ``rows`` (ascending) describes."""
    counts = torch.bincount(rows, minlength=batch)
    return torch.cumsum(counts, 0) - counts


def sparse_decode(rows: Tensor, cols: Tensor, vals: Tensor, atoms: Tensor, batch: int) -> Tensor:
    """sum_j vals_ij atoms_j for each row i, over the kept entries only (no bias)."""
    return F.embedding_bag(
        cols, atoms, offsets(rows, batch), mode="sum", per_sample_weights=vals.to(atoms.dtype)
    )


def to_dense(rows: Tensor, cols: Tensor, vals: Tensor, batch: int, n: int) -> Tensor:
    h = torch.zeros(batch, n, dtype=vals.dtype, device=vals.device)
    return h.index_put_((rows, cols), vals)


def to_coo(rows: Tensor, cols: Tensor, vals: Tensor, batch: int, n: int) -> Tensor:
    idx = torch.stack([rows, cols])
    return torch.sparse_coo_tensor(idx, vals, (batch, n), check_invariants=False)
