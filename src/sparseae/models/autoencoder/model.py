"""The `Autoencoder`: one class for every variant, composed of three choices (DESIGN.md):

    x --corruption--> backbone.encode --code activation--> sparsity --> h --> backbone.decode

It computes its own loss terms, so the trainer stays one loop for every model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from sparseae.corruptions import Corruption, make_corruption
from sparseae.data.transform import InputTransform
from sparseae.models.autoencoder.backbones import Backbone, make_backbone
from sparseae.models.autoencoder.config import ModelConfig
from sparseae.models.base import MODEL_KINDS, Atoms, ModelBase, StepOutput
from sparseae.models.code import check_code_activation
from sparseae.nn_utils import activation
from sparseae.sparsities import Sparsity, make_sparsity


class Autoencoder(ModelBase):
    """A sparse (or plain) autoencoder described entirely by a `ModelConfig`.

    ``Autoencoder(d_in=784, hidden=[100], n_latents=300, activation="gelu",
    code_activation="sigmoid", sparsity="kl", sparsity_params={"rho": 0.1, "weight": 0.05/32},
    loss="bce")`` is a KL sparse AE (Ng's notes, in a Keras-style recipe).
    """

    checkpoint_kind = "autoencoder"

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = ModelConfig(**kwargs)
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        self.sparsity: Sparsity = make_sparsity(
            config.sparsity, config.n_latents, **config.sparsity_params
        )
        check_code_activation(self.sparsity, config.code_activation)
        self.backbone: Backbone = make_backbone(config)
        self.corruption: Corruption = make_corruption(config.corruption, **config.corruption_params)
        self.code_act = activation(config.code_activation)
        self.input_transform = InputTransform(config.d_in)

    # -- the three stages -------------------------------------------------------------------
    def pre_activation(self, x: Tensor) -> Tensor:
        """The code layer's pre-activation z of (already transformed) x."""
        return self.backbone.encode(x)

    def code(self, x: Tensor) -> Tensor:
        """The sparse code h of (already transformed, uncorrupted) x."""
        return self.sparsity(self.code_act(self.backbone.encode(x)))

    def encode(self, x: Tensor) -> Tensor:
        """The sparse code h of raw x (the fitted input transform applied first)."""
        return self.code(self.input_transform(x))

    def decode_logits(self, h: Tensor) -> Tensor:
        return self.backbone.decode(h)

    def decode(self, h: Tensor) -> Tensor:
        """Reconstruction in the model's (transformed) input space."""
        out = self.backbone.decode(h)
        return torch.sigmoid(out) if self.config.output_activation == "sigmoid" else out

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of raw x, back in raw units (no corruption: `step` trains)."""
        return self.input_transform.inverse(self.decode(self.encode(x)))

    # -- the objective ----------------------------------------------------------------------
    def reconstruction_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean over elements: BCE on logits (stable, Keras' binary_crossentropy) or MSE."""
        target = target.reshape(logits.shape)
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        out = torch.sigmoid(logits) if self.config.output_activation == "sigmoid" else logits
        return F.mse_loss(out, target)

    def step(self, x: Tensor) -> StepOutput:
        """Loss of one batch of transformed x: corrupt (training only), encode, decode, add
        the penalty."""
        z = self.backbone.encode(self.corruption(x))
        a = self.code_act(z)
        code = self.sparsity(a)
        logits = self.decode_logits(code)
        recon = self.reconstruction_loss(logits, x)
        penalty = self.sparsity.penalty(a, code, self.atom_norms())
        x_hat = None
        if self.backbone.atoms() is not None and self.config.output_activation == "linear":
            x_hat = logits.detach()  # a linear dictionary: the residual AuxK explains
        return StepOutput(
            recon + penalty, {"recon": recon, "sparsity": penalty}, code, z.detach(), x_hat
        )

    def decoder_atoms(self) -> Atoms | None:
        return self.backbone.atoms()

    def encoder_atoms(self) -> Atoms | None:
        return self.backbone.encoder_atoms()

    def fused_step(self) -> Any:
        """A hand-derived step where one is exact for this configuration: the sparse k-sparse
        step for a one-layer top-k model, else the dense MLP step."""
        from sparseae.models.autoencoder import fused_ksparse, fused_mlp

        if fused_ksparse.supports(self, Autoencoder) is None:
            return fused_ksparse.KSparseStep(self)
        if fused_mlp.supports(self, Autoencoder) is None:
            return fused_mlp.FusedMLPStep(self)
        return None

    def filters(self) -> Tensor | None:
        return self.backbone.filters()

    def describe(self) -> str:
        """One sentence on what this model is, generated from its configuration."""
        c = self.config
        layers = "-".join(str(s) for s in (c.d_in, *c.hidden, c.n_latents, *c.hidden[::-1], c.d_in))
        describe_layers = getattr(self.backbone, "describe_layers", None)
        if describe_layers is not None:  # conv / lstm: their own shape story
            layers = describe_layers()
        tied = ", tied decoder weights" if c.tied else ""
        corr = "" if c.corruption == "none" else f"; {self.corruption.describe()}"
        hidden = f"{c.activation} hidden, " if c.hidden else ""
        return (
            f"{c.backbone} autoencoder {layers} ({hidden}{c.code_activation} code{tied}), "
            f"{c.loss} loss; sparsity: {self.sparsity.describe()}{corr}"
        )


@MODEL_KINDS.register("autoencoder")
def _build(config: dict[str, Any], source: str | None = None) -> Autoencoder:
    return Autoencoder(ModelConfig.from_dict(config, source))
