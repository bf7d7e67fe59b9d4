"""`SAE`: a one-layer sparse dictionary for model activations (the SAELens / sparsify job).

    pre = (x - b_dec) @ W_enc + b_enc      h = sparsity(code_activation(pre))
    x_hat = h @ W_dec + b_dec

Mechanisms with a sparse support (topk, batchtopk) train through `kernels` (cost scales with
k, not n_latents); every other mechanism runs the dense path. The dictionary tricks (unit
norm, b_dec at the geometric median, dead latents, AuxK, resampling) are the trainer's, and
work on this model through `decoder_atoms` and `encode_at`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparseae.data.transform import InputTransform
from sparseae.errors import ConfigError
from sparseae.models.base import MODEL_KINDS, Atoms, ModelBase, StepOutput
from sparseae.models.code import check_code_activation, sparse_kernels_apply
from sparseae.models.sae import kernels
from sparseae.models.sae.config import LEGACY_TRAINING_KEYS, SAEConfig
from sparseae.models.sae.screen import TopKScreen, training_support
from sparseae.nn_utils import activation
from sparseae.sparsities import Sparsity, make_sparsity
from sparseae.sparsities.topk import TopKSparsity


class ForwardParts(NamedTuple):
    """What one training pass computes: the reconstruction, the code as the trainer sees
    it, the detached pre-activation, the penalty, and the differentiable code itself as
    ``sparse`` (rows, cols, values) or ``dense`` (one of the two is None)."""

    x_hat: Tensor
    code: Tensor
    pre: Tensor
    penalty: Tensor
    sparse: tuple[Tensor, Tensor, Tensor] | None
    dense: Tensor | None


class SAE(ModelBase):
    """Sparse autoencoder / dictionary for activation vectors (see module docstring)."""

    checkpoint_kind = "sae"

    @property
    def dictionary_defaults(self) -> dict[str, Any]:
        """Adam eps 1e-8 (not Keras' 1e-7): a mean-over-(batch x d_in) MSE gives gradients
        near 1e-7 per weight at d_in 768, where a larger eps damps Adam's steps. Unit-norm
        atoms, except under a penalty weighted by atom norms, which is meant for a free norm."""
        free = self.sparsity.needs_atom_norms
        return {"unit_norm_decoder": not free, "b_dec_init": "geometric_median", "eps": 1e-8}

    def __init__(self, config: SAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config if config is not None else SAEConfig(**kwargs)
        c = self.config
        self.sparsity: Sparsity = make_sparsity(c.sparsity, c.n_latents, **c.sparsity_params)
        check_code_activation(self.sparsity, c.code_activation)
        self.code_act = activation(c.code_activation)
        atom_norm = c.decoder_init_norm
        if atom_norm is None:
            atom_norm = 0.1 if self.sparsity.needs_atom_norms else 1.0
        w_dec = torch.randn(c.n_latents, c.d_in)
        w_dec *= atom_norm / w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        if c.tied_init:
            w_enc = w_dec.t() * c.encoder_init_norm
        else:
            w_enc = torch.empty(c.d_in, c.n_latents).uniform_(-1.0, 1.0)
            w_enc *= (
                atom_norm * c.encoder_init_norm / w_enc.norm(dim=0, keepdim=True).clamp_min(1e-12)
            )
        self.W_enc = nn.Parameter(w_enc.contiguous())
        self.b_enc = nn.Parameter(torch.zeros(c.n_latents))
        self.b_dec = nn.Parameter(torch.zeros(c.d_in))
        self.input_transform = InputTransform(c.d_in)
        self.screen = _screen(self.sparsity, c)
        self._register_load_state_dict_pre_hook(_drop_legacy_buffers)

    @property
    def uses_sparse_path(self) -> bool:
        return self.config.sparse_decode and sparse_kernels_apply(
            self.sparsity, self.config.code_activation
        )

    # -- dense API ---------------------------------------------------------------------------
    def pre_activation(self, x: Tensor) -> Tensor:
        return torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)

    def code(self, x: Tensor) -> Tensor:
        """Dense code h (B, n_latents) of transformed x."""
        return self.sparsity(self.code_act(self.pre_activation(x)))

    def encode(self, x: Tensor) -> Tensor:
        """Dense code h (B, n_latents) of raw x."""
        return self.code(self.input_transform(x))

    def decode(self, h: Tensor) -> Tensor:
        return torch.addmm(self.b_dec, h, self.W_dec)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of raw x, in raw units."""
        xt = self.input_transform(x)
        if self.uses_sparse_path:
            rows, cols, vals = self.encode_sparse(xt)
            x_hat = self.decode_sparse(rows, cols, vals, xt.shape[0])
        else:
            x_hat = self.decode(self.code(xt))
        return self.input_transform.inverse(x_hat)

    # -- sparse API (mechanisms with a sparse support) ---------------------------------------
    def encode_sparse(self, x: Tensor, pre: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(rows, cols, values) of the code of transformed x; rows ascending."""
        if pre is None:
            with torch.no_grad():
                pre = self.pre_activation(x)
        rows, cols = self.sparsity.support(pre)
        return rows, cols, self._kept_values(x, rows, cols, pre)

    def _kept_values(self, x: Tensor, rows: Tensor, cols: Tensor, pre: Tensor) -> Tensor:
        """The code's values at the chosen entries, differentiable in the encoder."""
        return self.sparsity.kept_values(self.code_act(self.encode_at(x, rows, cols, pre)))

    def decode_sparse(self, rows: Tensor, cols: Tensor, vals: Tensor, batch: int) -> Tensor:
        return kernels.sparse_decode(rows, cols, vals, self.W_dec, batch) + self.b_dec

    def encode_at(self, x: Tensor, rows: Tensor, cols: Tensor, pre: Tensor | None = None) -> Tensor:
        if pre is None:
            return super().encode_at(x, rows, cols)
        return kernels.GatherEncode.apply(x, self.b_dec, self.W_enc, self.b_enc, pre, rows, cols)

    # -- training ----------------------------------------------------------------------------
    def step(self, x: Tensor) -> StepOutput:
        """MSE (+ the sparsity's penalty) of a batch of transformed x."""
        if self.config.bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                out = self._step(x)
            out.loss = out.loss.float()
            return out
        return self._step(x)

    def _step(self, x: Tensor) -> StepOutput:
        f = self.forward_parts(x)
        recon = F.mse_loss(f.x_hat, x)
        terms = {"recon": recon, "sparsity": f.penalty}
        return StepOutput(recon + f.penalty, terms, f.code, f.pre, f.x_hat.detach())

    def forward_parts(self, x: Tensor) -> ForwardParts:
        """One differentiable pass on transformed x, for this step and subclasses' terms."""
        batch, n = x.shape[0], self.n_latents
        if self.uses_sparse_path:
            w_enc, b_enc, b_dec = (p.detach() for p in (self.W_enc, self.b_enc, self.b_dec))
            out = torch.empty(batch, n, dtype=x.dtype, device=x.device)
            pre, rows, cols = training_support(self, x - b_dec, w_enc, b_enc, out)
            vals = self._kept_values(x, rows, cols, pre)
            x_hat = self.decode_sparse(rows, cols, vals, batch)
            # training: a sparse COO code (cheap, nothing reads it per step); eval: dense,
            # for the trainer's sparsity statistics
            as_code = kernels.to_coo if self.training else kernels.to_dense
            code = as_code(rows, cols, vals.detach(), batch, n)
            return ForwardParts(x_hat, code, pre, x.new_zeros(()), (rows, cols, vals), None)
        pre = self.pre_activation(x)
        a = self.code_act(pre)
        h = self.sparsity(a)
        penalty = self.sparsity.penalty(a, h, self.atom_norms())
        return ForwardParts(self.decode(h), h, pre.detach(), penalty, None, h)

    def fused_step(self) -> Any:
        """The hand-derived sparse-path step (`fused`), where it is exact for this model."""
        from sparseae.models.sae.fused import SAEFusedStep, supports

        return SAEFusedStep(self) if supports(self, SAE) is None else None

    def decoder_atoms(self) -> Atoms:
        return Atoms(self.W_dec, self.b_dec)

    def encoder_atoms(self) -> Atoms:
        return Atoms(self.W_enc, self.b_enc, transposed=True)

    @torch.no_grad()
    def fold_input_transform(self) -> SAE:
        """Fold a zero-shift scalar scaling (SAELens-style norm scaling) into the weights, so
        the model takes raw activations with an identity transform: pre = (s x - b) W =
        (x - b/s)(s W), x_hat_raw = x_hat / s. Thresholds live on the pre-activation, which
        does not change."""
        t = self.input_transform
        s = t.scale
        if t.shift.abs().max() > 0 or (s - s[0]).abs().max() > 0 or t.clips:
            from sparseae.errors import ConfigError

            raise ConfigError("only a zero-shift scalar input scaling can be folded into an SAE")
        scale = float(s[0])
        self.W_enc.mul_(scale)
        self.b_dec.div_(scale)
        self.W_dec.div_(scale)
        t.set(0.0, 1.0)
        return self

    def describe(self) -> str:
        c = self.config
        return f"SAE {c.d_in} -> {c.n_latents} latents; sparsity: {self.sparsity.describe()}"


def _screen(sparsity: Sparsity, config: SAEConfig) -> TopKScreen | None:
    if not config.bf16_screen:
        return None
    if not isinstance(sparsity, TopKSparsity) or not config.sparse_decode:
        raise ConfigError(
            f"bf16_screen applies to the topk sparsity on the sparse path, not {config.sparsity!r}"
            f"{'' if config.sparse_decode else ' with sparse_decode off'}: drop bf16_screen"
        )
    if config.bf16:
        raise ConfigError("bf16_screen and bf16 autocast exclude each other: choose one")
    return TopKScreen()


def _drop_legacy_buffers(state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Checkpoints of older versions kept the dead-latent counter in the model."""
    state.pop(prefix + "since_fired", None)


@MODEL_KINDS.register("sae")
def _build(config: dict[str, Any], source: str | None = None) -> SAE:
    if isinstance(config, dict):
        config = {k: v for k, v in config.items() if k not in LEGACY_TRAINING_KEYS}
    return SAE(SAEConfig.from_dict(config, source))
