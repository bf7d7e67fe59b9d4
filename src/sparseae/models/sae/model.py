"""`SAE`: a one-layer sparse dictionary for model activations (the SAELens / sparsify job).

    pre = (x - b_dec) @ W_enc + b_enc      h = sparsity(pre)      x_hat = h @ W_dec + b_dec

Speed (TopK family): the encoder is one dense matmul, computed without autograd; only the
kept (row, latent) entries are gathered as differentiable values by `_GatherEncode`, whose
backward is a sparse (nnz x d) product, and the decoder is an ``embedding_bag`` over the kept
latents, whose backward only touches those rows of W_dec. So nothing of size (B, n_latents)
is built for the decoder or kept for backward, and decoder and encoder-gradient costs scale
with k instead of n_latents. Other sparsities (l1, kl, jumprelu, ...) use the dense path.

Dead latents: ``dead_after`` > 0 turns on a buffer counting, per latent, the samples seen
since it last fired. A latent is dead once that count reaches ``dead_after`` (Gao et al. use
10M tokens at LLM scale; the default here, 0 = off, suits small data: set it to a few
epochs' worth of samples). With ``aux_k`` > 0 the AuxK loss (Gao et al. 2024) is added: the
top ``aux_k`` dead latents reconstruct the residual ``x - x_hat``, weight ``aux_weight``
(1/32), normalised by the residual's own energy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparseae.errors import ConfigError
from sparseae.models.autoencoder.model import StepOutput
from sparseae.sparsities.base import Sparsity, TopKSparsity, make_sparsity
from sparseae.sparsities.modern import BatchTopKSparsity


@dataclass(frozen=True)
class SAEConfig:
    d_in: int
    n_latents: int
    sparsity: str = "topk"
    sparsity_params: dict[str, Any] = field(default_factory=lambda: {"k": 32})
    tied_init: bool = True  # encoder initialised as the decoder's transpose
    dead_after: int = 0  # samples without firing before a latent counts as dead (0: off)
    aux_k: int = 0  # AuxK: dead latents used to reconstruct the residual (0: off)
    aux_weight: float = 1.0 / 32
    sparse_decode: bool = True  # TopK family: decode through the kept latents only
    bf16: bool = False  # autocast the step to bfloat16 (meant for CUDA; works on CPU too)

    def __post_init__(self) -> None:
        for name in ("d_in", "n_latents"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"SAE {name} must be an integer >= 1, got {v!r}")
        if self.dead_after < 0 or self.aux_k < 0:
            raise ConfigError("SAE dead_after and aux_k must be >= 0")
        if self.aux_k and not self.dead_after:
            raise ConfigError("aux_k > 0 needs dead-latent tracking: set dead_after > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SAEConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class _GatherEncode(torch.autograd.Function):
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
                _offsets(rows, batch),
                mode="sum",
                per_sample_weights=g,
            )
        return grad_x, grad_bdec, grad_w, grad_b, None, None, None


def _offsets(rows: Tensor, batch: int) -> Tensor:
    counts = torch.bincount(rows, minlength=batch)
    return torch.cumsum(counts, 0) - counts


class SAE(nn.Module):
    """Sparse autoencoder / dictionary for activation vectors (see module docstring)."""

    checkpoint_kind = "sae"

    def __init__(self, config: SAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config if config is not None else SAEConfig(**kwargs)
        c = self.config
        self.sparsity: Sparsity = make_sparsity(c.sparsity, c.n_latents, **c.sparsity_params)
        w_dec = torch.randn(c.n_latents, c.d_in)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        if c.tied_init:
            self.W_enc = nn.Parameter(w_dec.t().clone())
        else:
            bound = 1.0 / c.d_in**0.5
            self.W_enc = nn.Parameter(torch.empty(c.d_in, c.n_latents).uniform_(-bound, bound))
        self.b_enc = nn.Parameter(torch.zeros(c.n_latents))
        self.b_dec = nn.Parameter(torch.zeros(c.d_in))
        # samples since each latent last fired (float: exact to 2**24, plenty per latent)
        self.register_buffer("since_fired", torch.zeros(c.n_latents))

    # -- shape -------------------------------------------------------------------------------
    @property
    def n_latents(self) -> int:
        return self.config.n_latents

    @property
    def d_in(self) -> int:
        return self.config.d_in

    @property
    def uses_sparse_path(self) -> bool:
        return self.config.sparse_decode and isinstance(
            self.sparsity, TopKSparsity | BatchTopKSparsity
        )

    # -- dense API ---------------------------------------------------------------------------
    def pre_activation(self, x: Tensor) -> Tensor:
        return torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)

    def encode(self, x: Tensor) -> Tensor:
        """Dense code h (B, n_latents)."""
        return self.sparsity(self.pre_activation(x))

    def decode(self, h: Tensor) -> Tensor:
        return torch.addmm(self.b_dec, h, self.W_dec)

    def forward(self, x: Tensor) -> Tensor:
        if self.uses_sparse_path:
            return self.decode_sparse(*self.encode_sparse(x), x.shape[0])
        return self.decode(self.encode(x))

    # -- sparse API (TopK family) -----------------------------------------------------------
    def _support(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        s = self.sparsity
        if isinstance(s, BatchTopKSparsity):
            return s.support(pre)
        assert isinstance(s, TopKSparsity)
        k = s.k if self.training else s.inference_k
        cols = pre.topk(k, dim=-1, sorted=False).indices.reshape(-1)
        rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(k)
        return rows, cols

    def encode_sparse(self, x: Tensor, pre: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(rows, cols, values) of the code; rows ascending. No (B, n) tensor enters autograd."""
        if pre is None:
            with torch.no_grad():
                pre = torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)
        rows, cols = self._support(pre)
        vals = _GatherEncode.apply(x, self.b_dec, self.W_enc, self.b_enc, pre, rows, cols)
        return rows, cols, torch.relu(vals)

    def decode_sparse(self, rows: Tensor, cols: Tensor, vals: Tensor, batch: int) -> Tensor:
        out = F.embedding_bag(
            cols,
            self.W_dec,
            _offsets(rows, batch),
            mode="sum",
            per_sample_weights=vals.to(self.W_dec.dtype),
        )
        return out + self.b_dec

    def to_dense(self, rows: Tensor, cols: Tensor, vals: Tensor, batch: int) -> Tensor:
        h = torch.zeros(batch, self.n_latents, dtype=vals.dtype, device=vals.device)
        return h.index_put_((rows, cols), vals)

    # -- training ----------------------------------------------------------------------------
    def dead_mask(self) -> Tensor:
        return self.since_fired >= self.config.dead_after

    @torch.no_grad()
    def _track(self, fired_cols: Tensor, batch: int) -> None:
        fired = torch.zeros(self.n_latents, dtype=torch.bool, device=fired_cols.device)
        fired[fired_cols] = True
        self.since_fired.add_(batch).masked_fill_(fired, 0)

    def step(self, x: Tensor) -> StepOutput:
        """MSE (+ sparsity penalty, + aux_weight * AuxK when dead latents are tracked)."""
        if self.config.bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                out = self._step(x)
            return StepOutput(out.loss.float(), out.terms, out.code)
        return self._step(x)

    def _step(self, x: Tensor) -> StepOutput:
        c = self.config
        batch = x.shape[0]
        with torch.no_grad():
            pre = torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)
        if self.uses_sparse_path:
            rows, cols, vals = self.encode_sparse(x, pre)
            x_hat = self.decode_sparse(rows, cols, vals, batch)
            fired_cols = cols[vals.detach() > 0]
            code = _LazyCode(self, rows, cols, vals, batch)
            penalty = x.new_zeros(())
        else:
            h = self.sparsity(self.pre_activation(x))
            x_hat = self.decode(h)
            fired_cols = (h.detach() != 0).any(0).nonzero().reshape(-1)
            code = h
            penalty = self.sparsity.penalty(h)
        recon = F.mse_loss(x_hat, x)
        terms = {"recon": recon, "sparsity": penalty}
        loss = recon + penalty
        if self.training and c.dead_after:
            self.last_batch = x.detach()  # for dead-latent resampling (sae_training)
            self._track(fired_cols, batch)
            if c.aux_k:
                aux = self._aux_loss(x, pre, x_hat)
                terms["aux"] = aux
                loss = loss + c.aux_weight * aux
        if isinstance(code, _LazyCode):
            # training: a sparse COO code (cheap, nothing reads it per step); eval: dense,
            # for the trainer's sparsity statistics
            code = code.dense() if not self.training else code.coo()
        return StepOutput(loss, terms, code)

    def _aux_loss(self, x: Tensor, pre: Tensor, x_hat: Tensor) -> Tensor:
        """AuxK: the top aux_k dead latents reconstruct the residual (Gao et al. 2024)."""
        dead = self.dead_mask()
        n_dead = int(dead.sum())
        if n_dead == 0:
            return x.new_zeros(())
        k = min(self.config.aux_k, n_dead)
        masked = pre.masked_fill(~dead, float("-inf"))
        cols = masked.topk(k, dim=-1, sorted=False).indices.reshape(-1)
        rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(k)
        vals = _GatherEncode.apply(x, self.b_dec, self.W_enc, self.b_enc, pre, rows, cols)
        vals = torch.relu(vals)
        residual = (x - x_hat).detach()
        e_hat = F.embedding_bag(
            cols,
            self.W_dec,
            _offsets(rows, x.shape[0]),
            mode="sum",
            per_sample_weights=vals.to(self.W_dec.dtype),
        )
        denom = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return (e_hat - residual).pow(2).sum(-1).mean() / denom

    def filters(self) -> Tensor:
        """Dictionary atoms, one per row (n_latents, d_in)."""
        return self.W_dec.detach()

    def describe(self) -> str:
        c = self.config
        return f"SAE {c.d_in} -> {c.n_latents} latents; sparsity: {self.sparsity.describe()}"


class _LazyCode:
    """Sparse code handed around inside `step`; densified once for the trainer's metrics."""

    def __init__(self, model: SAE, rows: Tensor, cols: Tensor, vals: Tensor, batch: int):
        self.model, self.rows, self.cols, self.vals, self.batch = model, rows, cols, vals, batch

    def dense(self) -> Tensor:
        return self.model.to_dense(self.rows, self.cols, self.vals.detach(), self.batch)

    def coo(self) -> Tensor:
        idx = torch.stack([self.rows, self.cols])
        shape = (self.batch, self.model.n_latents)
        return torch.sparse_coo_tensor(idx, self.vals.detach(), shape, check_invariants=False)


def _build(config: dict[str, Any]) -> SAE:
    return SAE(SAEConfig.from_dict(config))


def _register() -> None:
    from sparseae.checkpoint import register_kind

    register_kind("sae", _build)


_register()
