"""A hand-derived training step for the dictionary SAE's sparse (TopK-family) path.

The autograd path (`SAE.step` + ``backward``) already keeps (batch x latents) tensors out of
the graph, but on a CPU most of what is left of its step is memory traffic, not
arithmetic: every step allocates fresh (latents x d_in) gradients and a fresh
(batch x latents) pre-activation, which the kernel hands over as new pages (a zero-fill per
page, about as long as the matmul that writes them at d_in 768), and the sparse
products go through COO tensors that are coalesced and transposed. This step computes the
same loss and the same gradients directly:

- the encoder matmul writes into a pre-activation buffer kept between steps;
- the kept entries (`entries.code_entries`) run the decode (an embedding_bag), the code's
  gradient (a sampled dense-dense product, SDDMM: only the nnz entries of g @ W_dec^T) and
  both weight gradients (CSR (n x B) @ (B x d) products) with their structure built once,
  written straight into gradient buffers owned by the parameters (the encoder's in
  column-major order, which *is* the (d_in, n_latents) layout, so no transpose is ever
  copied); a small dictionary's entries run dense products instead;
- the derivative of the code activation at the kept entries comes from autograd on the
  nnz values alone (exact for every monotone activation, negligible cost).

With the trainer's AuxK (`step(x, aux)`), the dead latents' entries are a second set of
kept entries: their decode of the residual, its SDDMM and both weight gradients are the same
sparse products, added into the same buffers.

`supports` says when it is exact (a plain `SAE` on its sparse path, no autocast, every
parameter trained); tests/test_sae_speed_paths.py compares it with autograd. The model
offers it through `SAE.fused_step()`; the trainer uses it as it uses the MLP's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.models.base import StepOutput
from sparseae.models.fused_base import AuxTerm, OwnedGradients, not_plain
from sparseae.models.sae import kernels
from sparseae.models.sae.entries import CodeEntries, code_entries
from sparseae.models.sae.screen import training_support


def supports(model: Any, plain: type) -> str | None:
    """None when `SAEFusedStep` trains ``model`` exactly as autograd would, else why not."""
    if (why := not_plain(model, plain)) is not None:
        return why
    if not model.uses_sparse_path:
        return "the dense path (a sparsity without a sparse support, or a penalty)"
    if getattr(model.config, "bf16", False):
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

    takes_aux = True  # `step(x, aux)` folds the trainer's AuxK term in

    def __init__(self, model: Any, split: Any = None) -> None:
        """``split`` (rows -> (encoder input, target)): a transcoder's rows, whose encoder
        reads the input as it is and whose decoder predicts the target; None: an SAE, which
        encodes x - b_dec and reconstructs x."""
        self.model, self.split = model, split
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

    def step(self, x: Tensor, aux: AuxTerm | None = None) -> StepOutput:
        """One step; with ``aux`` (the trainer's AuxK) its dead latents' term is in the loss
        and its gradients are in the same buffers, as autograd on ``model.step`` + AuxK."""
        with torch.no_grad():
            self._attach_grads()
            w_enc, b_enc, w_dec, b_dec = (p.detach() for p in self.params)
            batch, n = x.shape[0], self.model.n_latents
            if self.split is None:
                xc, target = x - b_dec, x
            else:  # the halves of each row, contiguous for the sparse products
                xc, target = (part.contiguous() for part in self.split(x))
            out = self._pre_buffer(batch, x)
            pre, rows, cols = training_support(self.model, xc, w_enc, b_enc, out)
            main = code_entries(rows, cols, None, pre, self.model)
            loss, x_hat, g = self._decode_and_grads(target, main, w_dec)
            terms = {"recon": loss, "sparsity": x.new_zeros(())}
            grads = [(main, main.grad_pre(main.value_grad(g, w_dec)))]
            if aux is not None and self.model.training:
                support = aux.support(pre)
                terms["aux"] = x.new_zeros(())
                if support is not None:
                    dead = code_entries(*support, pre, self.model, self._aux_dtype())
                    terms["aux"], grad_dead = self._aux_grads(target, x_hat, dead, w_dec, aux)
                    loss = loss + aux.weight * terms["aux"]
                    grads.append((dead, grad_dead))
            self._encoder_grads(xc, grads, g, w_enc)
            as_code = kernels.to_coo if self.model.training else kernels.to_dense
            code = as_code(main.rows, main.cols, main.values, batch, n)
        return StepOutput(loss, terms, code, pre, x_hat, None if self.split is None else target)

    def _aux_dtype(self) -> torch.dtype | None:
        """bf16 for AuxK's dense block under the bf16 screen (see `entries`), else None."""
        return torch.bfloat16 if getattr(self.model, "screen", None) is not None else None

    def _decode_and_grads(
        self, target: Tensor, e: CodeEntries, w_dec: Tensor
    ) -> tuple[Tensor, ...]:
        """x_hat, the MSE, its gradient g wrt x_hat, and W_dec's gradient (into its buffer)."""
        x_hat = e.decode(w_dec).add_(self.params[3].detach())
        err = x_hat - target
        loss = torch.dot(err.reshape(-1), err.reshape(-1)) / err.numel()
        g = err.mul_(2.0 / err.numel())  # d loss / d x_hat (err is not needed any more)
        e.add_weight_grad(self.grads[2], e.values, g, first=True)
        return loss, x_hat, g

    def _aux_grads(
        self, target: Tensor, x_hat: Tensor, e: CodeEntries, w_dec: Tensor, aux: AuxTerm
    ) -> tuple[Tensor, Tensor]:
        """AuxK: the dead latents' code reconstructs the residual target - x_hat (no decoder
        bias), normalised by ``aux.normaliser``. Returns the term and its entries'
        pre-activation gradient; W_dec's gradient is added to its buffer."""
        batch = target.shape[0]
        residual = target - x_hat
        diff = e.decode(w_dec).sub_(residual)
        energy = aux.normaliser(residual)
        aux_loss = torch.dot(diff.reshape(-1), diff.reshape(-1)) / batch / energy
        g = diff.mul_(2.0 * aux.weight / batch / energy)
        e.add_weight_grad(self.grads[2], e.values, g, first=False)
        return aux_loss, e.grad_pre(e.value_grad(g, w_dec))

    def _encoder_grads(
        self, xc: Tensor, grads: list[tuple[CodeEntries, Tensor]], g: Tensor, w_enc: Tensor
    ) -> None:
        """W_enc, b_enc and b_dec from each set of entries' pre-activation gradient; W_enc's
        in column-major order, which is its (d_in, n_latents) layout: no transpose copied."""
        g_wenc, g_benc, _, g_bdec = self.grads
        g_benc.zero_()
        for i, (e, grad_pre) in enumerate(grads):
            e.add_weight_grad(g_wenc.t(), grad_pre, xc, first=i == 0)
            g_benc.index_add_(0, e.cols, grad_pre)
        if self.split is not None:  # b_dec only through the decoder
            torch.sum(g, 0, out=g_bdec)
            return
        # b_dec: + through the decoder, - through the encoder's input x - b_dec
        torch.addmv(torch.sum(g, 0), w_enc, g_benc, alpha=-1.0, out=g_bdec)
