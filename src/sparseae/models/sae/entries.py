"""The products a hand-derived SAE step runs over one set of code entries (the kept top-k,
or AuxK's dead latents), in the form that is faster for their density.

A step needs four products per set of entries: the decode (code @ W_dec), the values'
gradient (g @ W_dec^T at the entries only) and the two weight gradients. `SparseEntries`
runs them as sparse products (the decode an ``embedding_bag``, 3x faster than MKL's CSR
product there; the rest CSR), whose cost scales with the entries (nnz x d_in) but runs an
order of magnitude below dense throughput on a CPU (gathered rows, no register blocking).
`BlockEntries` runs them as dense products over the few columns the entries fall in (AuxK's
dead latents, or every latent of a small dictionary), which is faster once the entries fill
more than about 1/12 of that block (measured at d_in 768). `code_entries` picks one.

A block's products can run in bf16 (``product_dtype``): under the bf16 screen, AuxK's dead
block is the step's largest dense work left in fp32 (about 0.2 s of a 0.69 s step at batch
1,024, 16,384 latents), and its term is an auxiliary push on latents that do not fire, where
bf16's 2^-8 relative rounding is mixed-precision training's usual trade.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.models.sae import kernels

DENSE_FROM = 1 / 12  # block density above which dense products beat CSR ones on a CPU


class CodeEntries:
    """Entries (rows[i], cols[i]) with their pre-activations ``kept`` and code values
    ``vals``, differentiable in ``kept`` alone (the activation's slope by autograd on nnz
    values, exact for every monotone activation); ``values`` is ``vals`` detached."""

    def __init__(self, rows: Tensor, cols: Tensor, pre: Tensor, model: Any) -> None:
        self.rows, self.cols, self.batch, self.n = rows, cols, pre.shape[0], pre.shape[1]
        self.kept = pre[rows, cols]
        with torch.enable_grad():
            self.kept.requires_grad_(True)
            self.vals = model.code_values(self.kept)
        self.values = self.vals.detach()

    def grad_pre(self, grad_vals: Tensor) -> Tensor:
        """The pre-activations' gradient from the code values' gradient."""
        (grad,) = torch.autograd.grad(self.vals, self.kept, grad_vals)
        return grad

    def decode(self, w_dec: Tensor) -> Tensor:
        raise NotImplementedError

    def value_grad(self, g: Tensor, w_dec: Tensor) -> Tensor:
        """(nnz,) g[row] . W_dec[col] at each entry: the values' gradient given g = dL/dx_hat."""
        raise NotImplementedError

    def add_weight_grad(self, out: Tensor, values: Tensor, dense: Tensor, first: bool) -> None:
        """out (n_latents x d) (+)= C^T @ dense, C the (batch x n_latents) matrix of
        ``values`` at the entries: W_dec's gradient (dense = g) or W_enc's (dense = x - b_dec,
        values = the pre-activations' gradient, out = the gradient's (n, d) view)."""
        raise NotImplementedError


class SparseEntries(CodeEntries):
    def __init__(self, rows: Tensor, cols: Tensor, pre: Tensor, model: Any) -> None:
        super().__init__(rows, cols, pre, model)
        self.by_row = kernels.csr(rows, cols, self.values, self.batch, self.n)
        self._order: Tensor | None = None

    def decode(self, w_dec: Tensor) -> Tensor:
        return kernels.bag_decode(self.rows, self.cols, self.values, w_dec, self.batch)

    def value_grad(self, g: Tensor, w_dec: Tensor) -> Tensor:
        return torch.sparse.sampled_addmm(self.by_row, g, w_dec.t(), beta=0.0).values()

    def add_weight_grad(self, out: Tensor, values: Tensor, dense: Tensor, first: bool) -> None:
        if self._order is None:  # the by-latent structure, built once for both gradients
            self._order = torch.argsort(self.cols, stable=True)
            major, minor = self.cols[self._order], self.rows[self._order]
            self._by_latent = kernels.csr(major, minor, values[self._order], self.n, self.batch)
            m = self._by_latent
        else:
            s = self._by_latent
            m = torch.sparse_csr_tensor(s.crow_indices(), s.col_indices(), values[self._order],
                                        s.shape, check_invariants=False)  # fmt: skip
        torch.addmm(out, m, dense, beta=0.0 if first else 1.0, out=out)


class BlockEntries(CodeEntries):
    """Entries whose latents lie in ``columns`` (sorted; None: every latent), each given by
    its position ``local`` there; the products are dense over that block of columns."""

    def __init__(
        self, rows: Tensor, local: Tensor, columns: Tensor | None, pre: Tensor, model: Any,
        product_dtype: torch.dtype | None = None,
    ) -> None:  # fmt: skip
        super().__init__(rows, local if columns is None else columns[local], pre, model)
        self.local, self.columns = local, columns
        self.width = pre.shape[1] if columns is None else columns.numel()
        self.dtype = product_dtype or pre.dtype  # the products' operand type
        self._atoms: Tensor | None = None
        self._value_block: Tensor | None = None

    def block(self, values: Tensor) -> Tensor:
        """(batch x width) dense block of ``values`` at the entries; the code values' block
        (read by the decode and by W_dec's gradient) is built once."""
        if values is self.values and self._value_block is not None:
            return self._value_block
        h = torch.zeros(self.batch, self.width, dtype=self.dtype, device=values.device)
        h.index_put_((self.rows, self.local), values.to(self.dtype))
        if values is self.values:
            self._value_block = h
        return h

    def atoms(self, w_dec: Tensor) -> Tensor:
        if self._atoms is None:
            atoms = w_dec if self.columns is None else w_dec.index_select(0, self.columns)
            self._atoms = atoms.to(self.dtype)
        return self._atoms

    def _mm(self, a: Tensor, b: Tensor, like: Tensor) -> Tensor:
        """a @ b in the products' type (a, b cast to it), returned in ``like``'s."""
        return torch.mm(a.to(self.dtype), b.to(self.dtype)).to(like.dtype)

    def decode(self, w_dec: Tensor) -> Tensor:
        return self._mm(self.block(self.values), self.atoms(w_dec), w_dec)

    def value_grad(self, g: Tensor, w_dec: Tensor) -> Tensor:
        return torch.mm(g.to(self.dtype), self.atoms(w_dec).t())[self.rows, self.local].to(g.dtype)

    def add_weight_grad(self, out: Tensor, values: Tensor, dense: Tensor, first: bool) -> None:
        dim = 0
        if out.stride(0) == 1 and out.shape[1] > 1:  # a column-major buffer (W_enc's):
            out, dim = out.t(), 1  # write its rows, index_add along the contiguous axis
            part = self._mm(dense.t(), self.block(values), out)
        else:
            part = self._mm(self.block(values).t(), dense, out)
        if self.columns is None:
            out.copy_(part) if first else out.add_(part)
            return
        if first:
            out.zero_()
        out.index_add_(dim, self.columns, part)


def code_entries(
    rows: Tensor, local: Tensor, columns: Tensor | None, pre: Tensor, model: Any,
    block_dtype: torch.dtype | None = None,
) -> CodeEntries:  # fmt: skip
    """The entries (rows[i], columns[local[i]]) (columns None: every latent), as dense
    block products (in ``block_dtype``, default pre's) where they fill at least
    `DENSE_FROM` of their block, else as CSR (in pre's type)."""
    width = pre.shape[1] if columns is None else columns.numel()
    if rows.numel() >= DENSE_FROM * pre.shape[0] * width:
        return BlockEntries(rows, local, columns, pre, model, block_dtype)
    cols = local if columns is None else columns[local]
    return SparseEntries(rows, cols, pre, model)
