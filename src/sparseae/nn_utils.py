"""Small shared pieces for building networks: activations by name and Keras-like init."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparseae.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "gelu": F.gelu,  # exact (erf) GELU, as Keras' default
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "linear": lambda t: t,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}"
        ) from None


def glorot_linear(fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Weight (fan_out, fan_in) Glorot-uniform and zero bias: Keras' Dense default, which the
    reference recipes were tuned with."""
    weight = torch.empty(fan_out, fan_in)
    nn.init.xavier_uniform_(weight)
    return nn.Parameter(weight), nn.Parameter(torch.zeros(fan_out))
