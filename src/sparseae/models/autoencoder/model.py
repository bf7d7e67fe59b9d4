"""The `Autoencoder`: one class for every variant, composed of three choices (DESIGN.md):

    x --corruption--> backbone.encode --code activation--> sparsity --> h --> backbone.decode

It knows how to compute its own loss terms, so the trainer stays one loop for every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparseae.config import ModelConfig
from sparseae.corruptions import Corruption, make_corruption
from sparseae.errors import ConfigError
from sparseae.models.autoencoder.backbones import Backbone, make_backbone
from sparseae.nn_utils import UNIT_INTERVAL_ACTIVATIONS, activation
from sparseae.sparsities.base import Sparsity, make_sparsity


@dataclass
class StepOutput:
    """What one training/eval forward pass produces: the total loss, every named term
    (detached copies are what the trainer logs) and the code, for sparsity metrics."""

    loss: Tensor
    terms: dict[str, Tensor]
    code: Tensor


class Autoencoder(nn.Module):
    """A sparse (or plain) autoencoder described entirely by a `ModelConfig`.

    ``Autoencoder(d_in=784, hidden=[100], n_latents=300, activation="gelu",
    code_activation="sigmoid", sparsity="kl", sparsity_params={"rho": 0.1, "weight": 0.05/32},
    loss="bce")`` is document 003's KL sparse AE.
    """

    def __init__(self, config: ModelConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = ModelConfig(**kwargs)
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        self.backbone: Backbone = make_backbone(config)
        self.sparsity: Sparsity = make_sparsity(
            config.sparsity, config.n_latents, **config.sparsity_params
        )
        self.corruption: Corruption = make_corruption(config.corruption, **config.corruption_params)
        self.code_act = activation(config.code_activation)
        if self.sparsity.needs_unit_interval and config.code_activation not in (
            UNIT_INTERVAL_ACTIVATIONS
        ):
            raise ConfigError(
                f"{config.sparsity} sparsity needs a code in (0, 1), but the code activation is "
                f"{config.code_activation!r}: use code_activation='sigmoid' (--code-activation "
                "sigmoid)"
            )

    # -- the three stages -------------------------------------------------------------------
    @property
    def n_latents(self) -> int:
        return self.config.n_latents

    @property
    def d_in(self) -> int:
        return self.config.d_in

    def encode(self, x: Tensor) -> Tensor:
        """The sparse code h of (uncorrupted) x."""
        return self.sparsity(self.code_act(self.backbone.encode(x)))

    def decode_logits(self, h: Tensor) -> Tensor:
        return self.backbone.decode(h)

    def decode(self, h: Tensor) -> Tensor:
        out = self.backbone.decode(h)
        return torch.sigmoid(out) if self.config.output_activation == "sigmoid" else out

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of x (no corruption: use `step` for the training objective)."""
        return self.decode(self.encode(x))

    # -- the objective ----------------------------------------------------------------------
    def reconstruction_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean over elements: BCE on logits (stable, Keras' binary_crossentropy) or MSE."""
        target = target.reshape(logits.shape)
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        out = torch.sigmoid(logits) if self.config.output_activation == "sigmoid" else logits
        return F.mse_loss(out, target)

    def step(self, x: Tensor) -> StepOutput:
        """Loss of one batch: corrupt (training only), encode, decode, add the penalty."""
        x_in = self.corruption(x)
        code = self.encode(x_in)
        recon = self.reconstruction_loss(self.decode_logits(code), x)
        penalty = self.sparsity.penalty(code)
        return StepOutput(recon + penalty, {"recon": recon, "sparsity": penalty}, code)

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


Autoencoder.checkpoint_kind = "autoencoder"


def _build_from_config(config: dict[str, Any]) -> Autoencoder:
    return Autoencoder(ModelConfig.from_dict(config))


def _register() -> None:
    from sparseae.checkpoint import register_kind

    register_kind("autoencoder", _build_from_config)


_register()
