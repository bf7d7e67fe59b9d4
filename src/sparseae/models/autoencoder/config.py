"""`ModelConfig`: what an `Autoencoder` is, backbone x sparsity x corruption (docs/DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparseae.config import Config, Each, OneOf, Optional, Range
from sparseae.errors import ConfigError


def _tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class ModelConfig(Config):
    """``hidden`` are the encoder's layers between the input and the code; the decoder mirrors
    them. ``code_activation`` is applied to the code layer before the sparsity mechanism
    (``sigmoid`` for KL, ``relu`` for L1, ``linear`` for a k-sparse AE...)."""

    d_in: int
    n_latents: int
    hidden: tuple[int, ...] = ()
    backbone: str = "mlp"
    activation: str = "relu"
    code_activation: str = "relu"
    output_activation: str = "sigmoid"
    tied: bool = False
    loss: str = "mse"
    sparsity: str = "none"
    sparsity_params: dict[str, Any] = field(default_factory=dict)
    corruption: str = "none"
    corruption_params: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    backbone_params: dict[str, Any] = field(default_factory=dict)

    constraints = {
        "d_in": Range(int, 1),
        "n_latents": Range(int, 1),
        "hidden": Each(Range(int, 1)),
        "tied": OneOf(True, False),
        "loss": OneOf("mse", "bce"),
        "output_activation": OneOf("sigmoid", "linear"),
        "input_shape": Optional(Each(Range(int, 1))),
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", _tuple(self.hidden))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", _tuple(self.input_shape))
        super().__post_init__()
        if self.loss == "bce" and self.output_activation != "sigmoid":
            raise ConfigError(
                "bce loss needs a sigmoid output (targets and outputs in [0, 1]): "
                "use output_activation='sigmoid' or loss='mse'"
            )
