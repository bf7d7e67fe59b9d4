"""Backbones: how x becomes the code layer's pre-activation and how a code becomes x̂.

A backbone is an ``nn.Module`` with ``encode(x) -> a`` (shape ``(n, n_latents)``, before the
code activation and sparsity) and ``decode(h) -> logits`` (shape ``(n, d_in)``, before the
output activation), registered by name so configs and the CLI can pick it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from sparseae.errors import ConfigError
from sparseae.models.base import Atoms
from sparseae.registry import Registry

if TYPE_CHECKING:
    from sparseae.models.autoencoder.config import ModelConfig

#: name -> factory(config) -> Backbone
BACKBONES: Registry[Callable[[ModelConfig], Backbone]] = Registry("backbone")


class Backbone(nn.Module):
    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def filters(self) -> Tensor | None:
        """Input-space images of the latents (n_latents, d_in) for filter grids, if the
        backbone has a natural one; None otherwise."""
        return None

    def atoms(self) -> Atoms | None:
        """The decoder as a linear dictionary, where it is one (see `Atoms`)."""
        return None

    def encoder_atoms(self) -> Atoms | None:
        """The encoder's rows and bias, where it is one linear layer."""
        return None


def register_backbone(name: str) -> Callable[[Callable[[ModelConfig], Backbone]], Callable]:
    def wrap(factory: Callable[[ModelConfig], Backbone]) -> Callable[[ModelConfig], Backbone]:
        BACKBONES.add(name, factory)
        return factory

    return wrap


def backbone_names() -> tuple[str, ...]:
    return BACKBONES.names()


def make_backbone(config: ModelConfig) -> Backbone:
    return BACKBONES.get(config.backbone)(config)


def backbone_params(config: ModelConfig, kind: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``config.backbone_params`` as a dict, after rejecting names the ``kind`` backbone does
    not take: a misspelt parameter would otherwise be silently ignored and its default used."""
    params: dict[str, Any] = dict(config.backbone_params)
    unknown = set(params) - set(allowed)
    if unknown:
        raise ConfigError(
            f"{kind} backbone takes no parameter {', '.join(sorted(unknown))} "
            f"(its parameters: {', '.join(allowed)})"
        )
    return params


from sparseae.models.autoencoder.backbones import conv as _conv  # noqa: E402,F401  (registers "conv")
from sparseae.models.autoencoder.backbones import lstm as _lstm  # noqa: E402,F401  (registers "lstm")
from sparseae.models.autoencoder.backbones import mlp as _mlp  # noqa: E402,F401  (registers "mlp")
