"""Transcoder: a sparse dictionary that reads a layer's input and writes the layer's output
(Dunefsky et al. 2024; sparsify's ``transcode``, SAELens' transcoders), so its latents
explain what the layer computes rather than what it holds.

    h = sparsity(code_activation(x_in @ W_enc + b_enc))
    y_hat = h @ W_dec + b_dec  (+ x_in @ W_skip with ``skip``: a linear skip connection)

Training rows are ``[x_in | y]`` side by side (``extract_activations(..., pair=True)`` writes
them from one pass), so sources, shards, the trainer and DDP need nothing new; the loss and
every evaluation are on the output ``y``. ``encode`` takes inputs, ``forward`` predicts
outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparseae.config import Config, OneOf, Range
from sparseae.data.transform import InputTransform
from sparseae.models.base import MODEL_KINDS, Atoms, ModelBase, StepOutput
from sparseae.models.code import check_code_activation, sparse_kernels_apply
from sparseae.models.sae import kernels
from sparseae.nn_utils import activation
from sparseae.sparsities import Sparsity, make_sparsity


@dataclass(frozen=True)
class TranscoderConfig(Config):
    d_in: int
    d_out: int
    n_latents: int
    sparsity: str = "topk"
    sparsity_params: dict[str, Any] = field(default_factory=dict)
    code_activation: str = "relu"
    skip: bool = False

    constraints = {
        "d_in": Range(int, 1),
        "d_out": Range(int, 1),
        "n_latents": Range(int, 1),
        "skip": OneOf(True, False),
    }


class Transcoder(ModelBase):
    checkpoint_kind = "transcoder"
    # the decoder starts at zero (sparsify's transcoder init): the target is another tensor
    # than the input, so random atoms only add a random map the first steps must unlearn;
    # the unit-norm projection then gives each atom the direction of its first update. Held-
    # out FVU at k 8 / 16 / 32, 3 epochs: MNIST's fc2 0.050 / 0.023 / 0.016 (random unit
    # atoms: 0.057 / 0.028 / 0.016; zero atoms with a free norm: 0.077 / 0.047 / 0.027),
    # MiniLM's block 0.264 / 0.202 / 0.168 (random unit atoms at k 16: 0.240; free: 0.201)
    dictionary_defaults = {"unit_norm_decoder": True}

    def __init__(self, config: TranscoderConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config if config is not None else TranscoderConfig(**kwargs)
        c = self.config
        self.sparsity: Sparsity = make_sparsity(c.sparsity, c.n_latents, **c.sparsity_params)
        check_code_activation(self.sparsity, c.code_activation)
        self.code_act = activation(c.code_activation)
        bound = 1.0 / c.d_in**0.5
        self.W_enc = nn.Parameter(torch.empty(c.d_in, c.n_latents).uniform_(-bound, bound))
        self.b_enc = nn.Parameter(torch.zeros(c.n_latents))
        self.W_dec = nn.Parameter(torch.zeros(c.n_latents, c.d_out))
        self.b_dec = nn.Parameter(torch.zeros(c.d_out))
        self.W_skip = nn.Parameter(torch.zeros(c.d_in, c.d_out)) if c.skip else None
        self.input_transform = InputTransform(c.d_in)

    @property
    def row_width(self) -> int:
        return self.config.d_in + self.config.d_out

    def split(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """A training row's input and target."""
        return rows[:, : self.config.d_in], rows[:, self.config.d_in :]

    def decoder_target(self, rows: Tensor) -> Tensor:
        """What the decoder reconstructs: the target part of a row (the b_dec init fits it)."""
        return self.split(rows)[1]

    def pre_activation(self, x_in: Tensor) -> Tensor:
        return torch.addmm(self.b_enc, x_in, self.W_enc)

    def code(self, x_in: Tensor) -> Tensor:
        return self.sparsity(self.code_act(self.pre_activation(x_in)))

    def encode(self, x_in: Tensor) -> Tensor:
        return self.code(self.input_transform(x_in))

    def decode(self, h: Tensor, x_in: Tensor | None = None) -> Tensor:
        y = torch.addmm(self.b_dec, h, self.W_dec)
        if self.W_skip is not None and x_in is not None:
            y = y + x_in @ self.W_skip
        return y

    def forward(self, x_in: Tensor) -> Tensor:
        """The predicted layer output for raw layer inputs."""
        xt = self.input_transform(x_in)
        return self.decode(self.code(xt), xt)

    @property
    def uses_sparse_path(self) -> bool:
        return sparse_kernels_apply(self.sparsity, self.config.code_activation)

    def step(self, rows: Tensor) -> StepOutput:
        x_in, y = self.split(rows)
        if self.uses_sparse_path:
            return self._sparse_step(x_in, y)
        pre = self.pre_activation(x_in)
        a = self.code_act(pre)
        code = self.sparsity(a)
        y_hat = self.decode(code, x_in)
        recon = F.mse_loss(y_hat, y)
        penalty = self.sparsity.penalty(a, code, self.atom_norms())
        terms = {"recon": recon, "sparsity": penalty}
        return StepOutput(recon + penalty, terms, code, pre.detach(), y_hat.detach(), y)

    def _sparse_step(self, x_in: Tensor, y: Tensor) -> StepOutput:
        """The SAE's sparse kernels (`models.sae.kernels`): the code's values and gradients
        at the kept entries only, the decode and its backward as sparse products; the dense
        path formed and back-propagated a (batch x latents) code (7.7 against sparsify's
        4.5 ms per step at k 8 on MNIST's fc2)."""
        batch, n = x_in.shape[0], self.n_latents
        with torch.no_grad():
            pre = self.pre_activation(x_in)
        r, c = self.sparsity.support(pre)
        vals = self.sparsity.kept_values(self.code_act(self.encode_at_input(x_in, r, c, pre)))
        y_hat = kernels.sparse_decode(r, c, vals, self.W_dec, batch) + self.b_dec
        if self.W_skip is not None:
            y_hat = y_hat + x_in @ self.W_skip
        recon = F.mse_loss(y_hat, y)
        as_code = kernels.to_coo if self.training else kernels.to_dense
        code = as_code(r, c, vals.detach(), batch, n)
        terms = {"recon": recon, "sparsity": recon.new_zeros(())}
        return StepOutput(recon, terms, code, pre, y_hat.detach(), y)

    def encode_at_input(self, x_in: Tensor, r: Tensor, c: Tensor, pre: Tensor) -> Tensor:
        """pre[r, c] as a differentiable function of the encoder, gradients at those
        entries only (the SAE's `GatherEncode`, with nothing subtracted from the input)."""
        no_center = x_in.new_zeros(x_in.shape[1])
        return kernels.GatherEncode.apply(x_in, no_center, self.W_enc, self.b_enc, pre, r, c)

    def encode_at(self, rows: Tensor, r: Tensor, c: Tensor, pre: Tensor | None = None) -> Tensor:
        """AuxK's differentiable pre-activations, from the rows' input part."""
        x_in = self.split(rows)[0]
        if pre is None:
            return self.pre_activation(x_in)[r, c]
        return self.encode_at_input(x_in, r, c, pre)

    def fused_step(self) -> Any:
        """The SAE's hand-derived sparse step (`models.sae.fused`) on (input, target)
        pairs, where it is exact: no skip connection, every parameter trained."""
        from sparseae.models.sae.fused import SAEFusedStep, supports

        if self.W_skip is not None or supports(self, Transcoder) is not None:
            return None
        return SAEFusedStep(self, split=self.split)

    def decoder_atoms(self) -> Atoms:
        return Atoms(self.W_dec, self.b_dec)

    def describe(self) -> str:
        c = self.config
        skip = " + linear skip" if c.skip else ""
        return (
            f"transcoder {c.d_in} -> {c.n_latents} latents -> {c.d_out}{skip}; sparsity: "
            f"{self.sparsity.describe()}"
        )


@MODEL_KINDS.register("transcoder")
def _build(config: dict[str, Any], source: str | None = None) -> Transcoder:
    return Transcoder(TranscoderConfig.from_dict(config, source))
