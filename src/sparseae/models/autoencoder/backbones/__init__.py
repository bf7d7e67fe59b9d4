"""Backbones: how x becomes the code layer's pre-activation and how a code becomes x̂.

A backbone is an ``nn.Module`` with ``encode(x) -> a`` (shape ``(n, n_latents)``, before the
code activation and sparsity) and ``decode(h) -> logits`` (shape ``(n, d_in)``, before the
output activation), registered by name so configs and the CLI can pick it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import Tensor, nn

from sparseae.errors import ConfigError

if TYPE_CHECKING:
    from sparseae.config import ModelConfig

_REGISTRY: dict[str, Callable[[ModelConfig], Backbone]] = {}


class Backbone(nn.Module):
    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def filters(self) -> Tensor | None:
        """Input-space images of the latents (n_latents, d_in) for filter grids, if the
        backbone has a natural one; None otherwise."""
        return None


def register_backbone(name: str) -> Callable[[Callable[[ModelConfig], Backbone]], Callable]:
    def wrap(factory: Callable[[ModelConfig], Backbone]) -> Callable[[ModelConfig], Backbone]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def backbone_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def make_backbone(config: ModelConfig) -> Backbone:
    if config.backbone not in _REGISTRY:
        raise ConfigError(
            f"unknown backbone {config.backbone!r}: choose one of {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[config.backbone](config)


from sparseae.models.autoencoder.backbones import conv as _conv  # noqa: E402,F401  (registers "conv")
from sparseae.models.autoencoder.backbones import lstm as _lstm  # noqa: E402,F401  (registers "lstm")
from sparseae.models.autoencoder.backbones import mlp as _mlp  # noqa: E402,F401  (registers "mlp")
