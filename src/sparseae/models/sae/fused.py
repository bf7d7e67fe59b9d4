"""A hand-derived training step for the dictionary SAE's sparse (TopK-family) path.

The autograd path (`SAE.step` + ``backward``) already keeps (batch x latents) tensors out of
the graph, but on a CPU most of what is left of its step is memory traffic, not
arithmetic: every step allocates fresh (latents x d_in) gradients and a fresh
(batch x latents) pre-activation, which the kernel hands over as new pages (a zero-fill per
page, about as long as the matmul that writes them at d_in 768), and the sparse
products go through COO tensors that are coalesced and transposed. This step computes the
same loss and the same gradients directly:

- the encoder matmul writes into a pre-activation buffer kept between steps;
- the kept entries' structure is built once per step as two CSR matrices (by row and by
  latent) that every sparse product shares: the decode (B x n) @ W_dec, the code's gradient
  (a sampled dense-dense product, SDDMM: only the nnz entries of g @ W_dec^T), and both
  weight gradients (n x B) @ (B x d), written straight into gradient buffers owned by the
  parameters (the encoder's in column-major order, which *is* the (d_in, n_latents) layout,
  so no transpose is ever copied);
- the derivative of the code activation at the kept entries comes from autograd on the
  nnz values alone (exact for every monotone activation, negligible cost).

`supports` says when it is exact (a plain `SAE` on its sparse path, no autocast, every
parameter trained); tests/test_sae_speed_paths.py compares it with autograd. The model
offers it through `SAE.fused_step()`; the trainer uses it as it uses the MLP's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.models.base import StepOutput
from sparseae.models.fused_base import OwnedGradients, not_plain
from sparseae.models.sae import kernels


def supports(model: Any, plain: type) -> str | None:
    """None when `SAEFusedStep` trains ``model`` exactly as autograd would, else why not."""
    if (why := not_plain(model, plain)) is not None:
        return why
    if not model.uses_sparse_path:
        return "the dense path (a sparsity without a sparse support, or a penalty)"
    if model.config.bf16:
        return "bf16 autocast"
    if not all(p.requires_grad for p in model.parameters()):
        return "frozen parameters"
    return None


class SAEFusedStep(OwnedGradients):
    """``step(x)`` -> `StepOutput` with every parameter's ``.grad`` set, as ``model.step(x)``
    then ``loss.backward()`` on fresh gradients. Buffers (gradients, the pre-activation) are
    allocated once and reused; ``StepOutput.pre`` is that buffer, valid until the next step.
    Gradients are re-attached if something set ``.grad`` to None, and rebuilt if a
    parameter got new storage (``model.to(...)``)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.params = [model.W_enc, model.b_enc, model.W_dec, model.b_dec]
        self._storage: list[int] = []
        self._pre: Tensor | None = None
        self._build()

    def _build(self) -> None:
        self.grads = [torch.empty_like(p, memory_format=torch.contiguous_format)
                      for p in self.params]  # fmt: skip
        self._storage = [p.data_ptr() for p in self.params]

    def _pre_buffer(self, batch: int, like: Tensor) -> Tensor:
        n = self.model.n_latents
        pre = self._pre
        if (
            pre is None
            or pre.shape != (batch, n)
            or pre.dtype != like.dtype
            or (pre.device != like.device)
        ):
            pre = self._pre = torch.empty(batch, n, dtype=like.dtype, device=like.device)
        return pre

    def step(self, x: Tensor) -> StepOutput:
        with torch.no_grad():
            self._attach_grads()
            w_enc, b_enc, w_dec, b_dec = (p.detach() for p in self.params)
            batch, n = x.shape[0], self.model.n_latents
            xc = x - b_dec
            pre = torch.addmm(b_enc, xc, w_enc, out=self._pre_buffer(batch, x))
            rows, cols = self.model.sparsity.support(pre)
            kept = pre[rows, cols]
        with torch.enable_grad():  # autograd on the nnz values only: the activation's slope
            kept.requires_grad_(True)
            vals = self.model.sparsity.kept_values(self.model.code_act(kept))
        with torch.no_grad():
            loss, x_hat = self._backward(x, xc, rows, cols, kept, vals, w_dec)
            code_vals = vals.detach()
            as_code = kernels.to_coo if self.model.training else kernels.to_dense
            code = as_code(rows, cols, code_vals, batch, n)
        terms = {"recon": loss, "sparsity": x.new_zeros(())}
        return StepOutput(loss, terms, code, pre, x_hat)

    def _backward(
        self,
        x: Tensor,
        xc: Tensor,
        rows: Tensor,
        cols: Tensor,
        kept: Tensor,
        vals: Tensor,
        w_dec: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Decode, the MSE and every gradient (written into the parameters' buffers)."""
        g_wenc, g_benc, g_wdec, g_bdec = self.grads
        batch, n = x.shape[0], self.model.n_latents
        v = vals.detach()
        by_row = kernels.csr(rows, cols, v, batch, n)
        x_hat = torch.mm(by_row, w_dec).add_(self.params[3].detach())
        err = x_hat - x
        loss = torch.dot(err.reshape(-1), err.reshape(-1)) / err.numel()
        g = err.mul_(2.0 / err.numel())  # d loss / d x_hat (err is not needed any more)
        grad_v = torch.sparse.sampled_addmm(by_row, g, w_dec.t(), beta=0.0).values()
        (grad_kept,) = torch.autograd.grad(vals, kept, grad_v)
        order = torch.argsort(cols, stable=True)
        by_latent = kernels.csr(cols[order], rows[order], v[order], n, batch)
        torch.addmm(g_wdec, by_latent, g, beta=0.0, out=g_wdec)
        by_latent = _with_values(by_latent, grad_kept[order])
        torch.addmm(g_wenc.t(), by_latent, xc, beta=0.0, out=g_wenc.t())  # column-major
        g_benc.zero_().index_add_(0, cols, grad_kept)
        # b_dec: + through the decoder, - through the encoder's input x - b_dec
        torch.addmv(torch.sum(g, 0), self.params[0].detach(), g_benc, alpha=-1.0, out=g_bdec)
        return loss, x_hat.detach()


def _with_values(m: Tensor, values: Tensor) -> Tensor:
    """The same sparsity structure as CSR ``m`` with other values."""
    return torch.sparse_csr_tensor(
        m.crow_indices(), m.col_indices(), values, m.shape, check_invariants=False
    )
