"""A hand-derived training step for the one-layer k-sparse autoencoder (Makhzani & Frey 2013:
one weight matrix, tied or not, a top-k code, a linear output and MSE).

Autograd runs that model as dense products: the decode multiplies a (batch x latents) code
that is almost all zeros, and the backward pass forms three more products of that size. Only
the encoder's product needs every latent; the decode, the kept values' gradient and both
weight gradients involve the k kept entries of each row alone. This step runs them over those
entries with the dictionary SAE's sparse products (`sparseae.models.sae.entries`). On one
CPU thread at 784 x 1,000, batch 128 (200 steps on random inputs, four runs on a shared
VM), a step takes 4.9-6.2 / 6.9-7.5 / 8.3-9.5 / 9.9-11.8 ms at k 25 / 50 / 75 / 100 against
autograd's 14.4-18.3 ms; on the paper's MNIST recipe, 40 epochs take 153 CPU-s against 349.
The sparse products stay the faster form up to k 100 there (the SAE's dense block products,
which `code_entries` picks from 1/12 density for AuxK, took 14.0-15.0 ms at k 100).

`supports` says exactly when it computes autograd's loss and gradients; anything else trains
through autograd or the dense MLP step. tests/test_fused_ksparse.py holds it to autograd.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.corruptions import NoCorruption
from sparseae.models.autoencoder.backbones.mlp import MLPBackbone
from sparseae.models.base import StepOutput
from sparseae.models.fused_base import OwnedGradients, not_plain, untrainable_parts
from sparseae.models.sae import kernels
from sparseae.models.sae.entries import SparseEntries

# activations for which the k largest pre-activations are the k largest activations (ties
# that a flat part creates hold zeros, whose choice changes neither the output nor a gradient)
_MONOTONE = frozenset({"linear", "relu", "sigmoid", "tanh"})


def supports(model: Any, plain: type) -> str | None:
    """None when `KSparseStep` trains ``model`` exactly as autograd would, else why not."""
    if (why := not_plain(model, plain)) is not None:
        return why
    cfg = model.config
    if type(model.backbone) is not MLPBackbone or list(cfg.hidden):
        return "not a one-layer mlp backbone"
    if cfg.sparsity != "topk":
        return f"{cfg.sparsity} sparsity (the sparse step needs a top-k support)"
    if cfg.code_activation not in _MONOTONE:
        return f"{cfg.code_activation} code activation (not monotone)"
    if cfg.output_activation != "linear" or cfg.loss != "mse":
        return "an output other than linear with MSE"
    return untrainable_parts(model)


class _CodeValues:
    """The code value of a kept pre-activation (code activation, then the sparsity's clamp),
    in the form `CodeEntries` differentiates on the kept entries alone."""

    def __init__(self, model: Any) -> None:
        self.code_act, self.kept_values = model.code_act, model.sparsity.kept_values

    def code_values(self, kept: Tensor) -> Tensor:
        return self.kept_values(self.code_act(kept))


class KSparseStep(OwnedGradients):
    """``step(x)`` -> `StepOutput` with every parameter's ``.grad`` set, as ``model.step(x)``
    then ``loss.backward()`` on fresh gradients. The code is sparse (COO) in training, as the
    SAE's; ``pre`` and ``x_hat`` feed the dictionary callbacks (dead-latent resampling)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.params = list(model.parameters())
        self._values = _CodeValues(model)
        self._corrupt = None if type(model.corruption) is NoCorruption else model.corruption.corrupt
        self._storage: list[int] = []
        self._build()

    def _build(self) -> None:
        bb: MLPBackbone = self.model.backbone  # type: ignore[assignment]
        self.grads = [torch.empty_like(p, memory_format=torch.contiguous_format)
                      for p in self.params]  # fmt: skip
        by_param = {id(p): g for p, g in zip(self.params, self.grads, strict=True)}
        self.w_enc, self.b_enc, self.b_dec = bb.enc_weights[0], bb.enc_biases[0], bb.dec_biases[0]
        # untied: its own (d_in, n_latents) decoder weight; tied: the encoder's rows decode
        self.w_dec = None if bb.dec_weights is None else bb.dec_weights[0]
        self.g_enc, self.g_benc = by_param[id(self.w_enc)], by_param[id(self.b_enc)]
        self.g_bdec = by_param[id(self.b_dec)]
        self.g_dec = self.g_enc if self.w_dec is None else by_param[id(self.w_dec)].t()
        self._storage = [p.data_ptr() for p in self.params]

    def step(self, x: Tensor) -> StepOutput:
        model = self.model
        with torch.no_grad():
            self._attach_grads()
            x = x.reshape(x.shape[0], -1)
            x_in = x if self._corrupt is None or not model.training else self._corrupt(x)
            w_enc = self.w_enc.detach()  # (n_latents, d_in): the encoder's rows
            atoms = w_enc if self.w_dec is None else self.w_dec.detach().t().contiguous()
            pre = torch.addmm(self.b_enc.detach(), x_in, w_enc.t())
            rows, cols = model.sparsity.support(model.code_act(pre))
            # each row's latents ascending: the entries in row-major order, so the code is
            # a coalesced COO tensor (the dead-latent count's coalesce then costs nothing)
            cols = cols.view(pre.shape[0], -1).sort(dim=1).values.reshape(-1)
            entries = SparseEntries(rows, cols, pre, self._values)
            x_hat = entries.decode(atoms).add_(self.b_dec.detach())
            err = x_hat - x
            loss = torch.dot(err.reshape(-1), err.reshape(-1)) / err.numel()
            g = err.mul_(2.0 / err.numel())  # d loss / d x_hat
            grad_pre = entries.grad_pre(entries.value_grad(g, atoms))
            # a tied weight takes the decoder's term first, then the encoder's
            entries.add_weight_grad(self.g_dec, entries.values, g, first=True)
            entries.add_weight_grad(self.g_enc, grad_pre, x_in, first=self.w_dec is not None)
            self.g_benc.zero_().index_add_(0, entries.cols, grad_pre)
            torch.sum(g, 0, out=self.g_bdec)
            code = self._code(entries, x.shape[0], pre.shape[1])
            terms = {"recon": loss, "sparsity": x.new_zeros(())}
        return StepOutput(loss, terms, code, pre, x_hat)

    def _code(self, e: SparseEntries, batch: int, n: int) -> Tensor:
        """The code: sparse (COO, coalesced: its entries are in row-major order) in training,
        as the SAE's, dense otherwise."""
        if not self.model.training:
            return kernels.to_dense(e.rows, e.cols, e.values, batch, n)
        return kernels.to_coo(e.rows, e.cols, e.values, batch, n, coalesced=True)
