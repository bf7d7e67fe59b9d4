"""Sparse kernels of the dictionary SAE's TopK-family path: nothing of size (batch x
latents) enters autograd.

The encoder is one dense matmul computed without autograd; only the kept (row, latent)
entries are gathered as differentiable values by `GatherEncode`, whose backward is a sparse
(nnz x d) product; the decoder is an ``embedding_bag`` over the kept latents, whose backward
touches only those rows of W_dec. Decoder and encoder-gradient costs thus scale with k
instead of n_latents.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

# CSR tensors are "beta" in torch and warn once per process when built; these kernels build
# them from indices they know are valid
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


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
            grad_w = encoder_weight_grad(rows, cols, g, x - b_dec, n)
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


def encoder_weight_grad(rows: Tensor, cols: Tensor, g: Tensor, xc: Tensor, n: int) -> Tensor:
    """(d, n) sum over kept entries of xc[row] g at column col, as a CSR (n x B) @ (B x d)
    product written in column-major order, which is the (d, n) layout itself: no COO
    coalesce and no transpose copy (both cost more than the product at d_in 768)."""
    if xc.dtype not in (torch.float32, torch.float64):  # MKL's CSR products: fp32/64 only
        gt = torch.sparse_coo_tensor(torch.stack([cols, rows]), g, (n, xc.shape[0]))
        return torch.sparse.mm(gt, xc).t()
    order = torch.argsort(cols, stable=True)
    by_latent = csr(cols[order], rows[order], g[order], n, xc.shape[0])
    out = torch.empty(xc.shape[1], n, dtype=xc.dtype, device=xc.device)
    torch.addmm(out.t(), by_latent, xc, beta=0.0, out=out.t())
    return out


def offsets(rows: Tensor, batch: int) -> Tensor:
    """embedding_bag offsets of the bags ``rows`` (ascending) describes."""
    counts = torch.bincount(rows, minlength=batch)
    return torch.cumsum(counts, 0) - counts


def csr(major: Tensor, minor: Tensor, values: Tensor, n_major: int, n_minor: int) -> Tensor:
    """CSR matrix of entries (major[i], minor[i]) = values[i], ``major`` non-decreasing."""
    counts = torch.bincount(major, minlength=n_major)
    crow = torch.zeros(n_major + 1, dtype=torch.int64, device=major.device)
    torch.cumsum(counts, 0, out=crow[1:])
    return torch.sparse_csr_tensor(crow, minor, values, (n_major, n_minor), check_invariants=False)


class SparseDecode(torch.autograd.Function):
    """out[i] = sum over kept (i, j) of vals_ij atoms_j (forward: `bag_decode`).

    Backward: the values' gradient is a sampled product (SDDMM: g @ atoms^T at the kept
    entries only) and the atoms' a CSR (n x B) @ (B x d) product; embedding_bag's backward
    does the same work through a zero-filled dense gradient and per-entry dot products,
    several times slower on a CPU at AuxK's nnz (B x 256)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, rows: Tensor, cols: Tensor, vals: Tensor, atoms: Tensor, batch: int
    ) -> Tensor:
        vals = vals.to(atoms.dtype)
        by_row = csr(rows, cols, vals, batch, atoms.shape[0])
        ctx.save_for_backward(rows, cols, vals, atoms)
        ctx.by_row = by_row
        return bag_decode(rows, cols, vals, atoms, batch)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        rows, cols, vals, atoms = ctx.saved_tensors
        g = g.to(atoms.dtype).contiguous()  # autocast may hand a bf16 gradient
        grad_vals = grad_atoms = None
        if ctx.needs_input_grad[2]:
            grad_vals = torch.sparse.sampled_addmm(ctx.by_row, g, atoms.t(), beta=0.0).values()
        if ctx.needs_input_grad[3]:
            order = torch.argsort(cols, stable=True)
            by_latent = csr(cols[order], rows[order], vals[order], atoms.shape[0], g.shape[0])
            grad_atoms = torch.empty(atoms.shape, dtype=g.dtype, device=g.device)
            torch.addmm(grad_atoms, by_latent, g, beta=0.0, out=grad_atoms)
        return None, None, grad_vals, grad_atoms, None


def bag_decode(rows: Tensor, cols: Tensor, vals: Tensor, atoms: Tensor, batch: int) -> Tensor:
    """sum_j vals_ij atoms_j per row i (``rows`` non-decreasing) as an ``embedding_bag``: on a
    CPU about 3x faster than the same CSR (B x n) @ (n x d) product (measured at 16,384 x
    768, k 32), which stays the faster form for the backward's products."""
    return F.embedding_bag(
        cols, atoms, offsets(rows, batch), mode="sum", per_sample_weights=vals.to(atoms.dtype)
    )


def sparse_decode(rows: Tensor, cols: Tensor, vals: Tensor, atoms: Tensor, batch: int) -> Tensor:
    """sum_j vals_ij atoms_j for each row i, over the kept entries only (no bias); ``rows``
    non-decreasing. Other dtypes, autocast (bf16) and other devices take embedding_bag:
    MKL's sparse products cover CPU float32 and float64 only."""
    plain = atoms.device.type == "cpu" and not torch.is_autocast_enabled("cpu")
    if plain and atoms.dtype in (torch.float32, torch.float64):
        return SparseDecode.apply(rows, cols, vals, atoms, batch)
    return F.embedding_bag(
        cols, atoms, offsets(rows, batch), mode="sum", per_sample_weights=vals.to(atoms.dtype)
    )


def to_dense(rows: Tensor, cols: Tensor, vals: Tensor, batch: int, n: int) -> Tensor:
    h = torch.zeros(batch, n, dtype=vals.dtype, device=vals.device)
    return h.index_put_((rows, cols), vals)


def to_coo(
    rows: Tensor, cols: Tensor, vals: Tensor, batch: int, n: int, coalesced: bool = False
) -> Tensor:
    """The entries as a COO tensor; ``coalesced`` marks them as already in row-major order
    without repeats, so a later ``coalesce()`` costs nothing."""
    idx = torch.stack([rows, cols])
    return torch.sparse_coo_tensor(
        idx, vals, (batch, n), check_invariants=False, is_coalesced=coalesced or None
    )
