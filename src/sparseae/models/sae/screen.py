"""Choosing a TopK SAE's support from a bf16 encoder product, with the kept values in fp32.

Why: on a CPU the fp32 encoder product (batch x d_in) @ (d_in x n_latents) is most of a TopK
training step (about 1.2 s of 1.7 s at batch 4096, d_in 768, 16,384 latents), and it is
there to find each row's k largest pre-activations. A bf16 product (AVX512-BF16 or AMX on a
CPU, tensor cores on a GPU) runs at about twice the fp32 rate, and its errors (a few 2^-8 of
a value) are much smaller than the gap between a row's k-th and (k + margin)-th values. So:

1. screen: pre ~ bf16(x - b_dec) @ bf16(W_enc) + b_enc, written into the fp32 pre buffer;
2. candidates: each row's k + ``margin`` largest screened values;
3. exact: the candidates' pre-activations in fp32 (a sampled dense-dense product, its cost
   rows x (k + margin) x d_in), written back into pre; the k largest are the support;
4. check: a row's choice stands when its k-th exact value clears the largest screened value
   left out by a bound on the screening error: the bf16 rounding of the product (at most
   2^-9 of a value) plus ``slack`` times the largest input-rounding error seen on the
   batch's candidates (per unit of row norm); a row that does not clear is recomputed in
   fp32 and chosen from the exact product.

The step then trains on what the fp32 step does: the same support (where the check holds)
and the same values. What differs: ``pre`` outside the candidates holds screened values
(AuxK picks and values its dead latents from them, and the fused step runs AuxK's dense
dead-latent block in bf16, `entries.BlockEntries`), and the check is statistical, not a
proof: a left-out latent whose input-rounding error is more than ``slack`` times the
batch's largest observed one could be missed. tests/test_sae_screen.py compares supports with fp32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.sparsities.selection import topk_indices


@torch.no_grad()
def training_support(
    model: Any, xc: Tensor, w_enc: Tensor, b_enc: Tensor, out: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(pre, rows, cols) of a training step's sparse path on centred (or encoder) input
    ``xc``, pre written into ``out``: the model's bf16 screen while it trains, if it has one
    (``model.screen``), else the fp32 product and the sparsity's support. Both the fused and
    the autograd step choose their support here."""
    screen = getattr(model, "screen", None)
    if screen is not None and model.training:
        return (out, *screen(xc, w_enc, b_enc, model.sparsity.current_k, out))
    pre = torch.addmm(b_enc, xc, w_enc, out=out)
    return (pre, *model.sparsity.support(pre))


class TopKScreen:
    """``(xc, w_enc, b_enc, k, out) -> (rows, cols)``: the support of each row's k largest
    pre-activations of centred input ``xc``, with ``out`` (batch x n_latents, fp32) holding
    the pre-activation (exact at the candidates). The bf16 buffers live between steps.
    ``checked_rows`` / ``recomputed_rows`` count the rows seen and those step 4 redid."""

    def __init__(self, margin: int = 32, slack: float = 2.0) -> None:
        self.margin, self.slack = margin, slack
        self.checked_rows = self.recomputed_rows = 0
        self._w: Tensor | None = None
        self._pre: Tensor | None = None

    def _screened(self, xc: Tensor, w_enc: Tensor, b_enc: Tensor, out: Tensor) -> None:
        """Step 1 into ``out``: the bf16 product copied into the fp32 buffer, then the fp32
        bias added there (one mixed-dtype add into ``out`` costs ten times the two)."""
        shape = (xc.shape[0], w_enc.shape[1])
        if self._w is None or self._w.shape != w_enc.shape or self._w.device != w_enc.device:
            self._w = torch.empty(w_enc.shape, dtype=torch.bfloat16, device=w_enc.device)
        if self._pre is None or self._pre.shape != shape or self._pre.device != xc.device:
            self._pre = torch.empty(shape, dtype=torch.bfloat16, device=xc.device)
        pre16 = torch.mm(xc.to(torch.bfloat16), self._w.copy_(w_enc), out=self._pre)
        out.copy_(pre16).add_(b_enc)

    @torch.no_grad()
    def __call__(
        self, xc: Tensor, w_enc: Tensor, b_enc: Tensor, k: int, out: Tensor
    ) -> tuple[Tensor, Tensor]:
        batch, n = out.shape
        width = min(n, k + self.margin)
        self._screened(xc, w_enc, b_enc, out)
        cand = topk_indices(out, width)  # (batch, width)
        screened = out.gather(1, cand)
        bias = b_enc[cand]
        exact = _sampled_rows(xc, w_enc, cand).add_(bias)
        out.scatter_(1, cand, exact)
        best, pick = exact.topk(k, dim=1, sorted=False)
        cols = cand.gather(1, pick)
        if width < n:
            self._recheck(xc, w_enc, b_enc, out, cols, best.amin(1), screened, exact, bias)
        self.checked_rows += batch
        rows = torch.arange(batch, device=out.device).repeat_interleave(k)
        return rows, cols.reshape(-1)

    def _recheck(
        self, xc: Tensor, w_enc: Tensor, b_enc: Tensor, out: Tensor, cols: Tensor,
        kth: Tensor, screened: Tensor, exact: Tensor, bias: Tensor,
    ) -> None:  # fmt: skip
        """Step 4: redo in fp32 the rows whose k-th exact value does not clear the largest
        left-out screened value (at most the smallest candidate's, ``edge``) by the error
        bound. A screened value's error has two parts: rounding the product to bf16 (at most
        2^-9 of it: bounded by ``2^-8 (|edge| + max |b_enc|)`` there) and the inputs'
        rounding, which scales with the row's norm; the latter's largest per unit norm on the
        batch's candidates (the first part taken off) times ``slack`` bounds it."""
        norms = xc.norm(dim=1).clamp_min(1e-30)
        rounded = (screened - bias).abs() * 2.0**-9  # the bound of the product's rounding
        inputs = ((exact - screened).abs() - rounded).clamp_min(0)
        error = (inputs.amax(1) / norms).amax()
        edge = screened.amin(1)
        bound = self.slack * error * norms + 2.0**-8 * (edge.abs() + b_enc.abs().amax())
        bad = torch.nonzero(kth <= edge + bound).flatten()
        if bad.numel() == 0:
            return
        self.recomputed_rows += bad.numel()
        redo = torch.addmm(b_enc, xc.index_select(0, bad), w_enc)
        out.index_copy_(0, bad, redo)
        cols.index_copy_(0, bad, topk_indices(redo, cols.shape[1]))


def _sampled_rows(xc: Tensor, w_enc: Tensor, cand: Tensor) -> Tensor:
    """(batch, width) xc[r] . W_enc[:, cand[r, j]] in fp32: the product at the candidates
    only (a CSR-sampled dense-dense product, as the step's own value gradient)."""
    batch, width = cand.shape
    crow = torch.arange(0, batch * width + 1, width, device=cand.device)
    mask = torch.sparse_csr_tensor(crow, cand.reshape(-1), torch.zeros(batch * width,
                                   dtype=xc.dtype, device=xc.device), (batch, w_enc.shape[1]),
                                   check_invariants=False)  # fmt: skip
    return torch.sparse.sampled_addmm(mask, xc, w_enc, beta=0.0).values().view(batch, width)
