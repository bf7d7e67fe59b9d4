"""Input corruption for denoising autoencoders: applied to x in training only, while the
reconstruction target stays the clean x. One small class per kind, registered by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sparseae.errors import ConfigError
from sparseae.registry import Registry

#: name -> Corruption subclass
CORRUPTIONS: Registry[type[Corruption]] = Registry("corruption")


def register_corruption(name: str) -> Callable[[type[Corruption]], type[Corruption]]:
    def wrap(cls: type[Corruption]) -> type[Corruption]:
        cls.name = name
        CORRUPTIONS.add(name, cls)
        return cls

    return wrap


def corruption_names() -> tuple[str, ...]:
    return CORRUPTIONS.names()


def make_corruption(name: str, **params: Any) -> Corruption:
    cls = CORRUPTIONS.get(name)
    unknown = set(params) - set(cls.param_names)
    if unknown:
        raise ConfigError(
            f"corruption {name!r} takes no parameter {', '.join(sorted(unknown))} "
            f"(its parameters: {', '.join(cls.param_names) or 'none'})"
        )
    return cls(**params)


def _probability(name: str, p: float) -> float:
    if not (isinstance(p, int | float) and 0.0 <= p < 1.0):
        raise ConfigError(f"{name} probability must lie in [0, 1), got {p!r}")
    return float(p)


class Corruption(nn.Module):
    """Identity at inference (``eval()``); `corrupt` is only called in training mode."""

    name: ClassVar[str] = "base"
    param_names: ClassVar[tuple[str, ...]] = ()

    def corrupt(self, x: Tensor) -> Tensor:
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.corrupt(x) if self.training else x

    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names}

    def describe(self) -> str:
        return "no input corruption"


@register_corruption("none")
class NoCorruption(Corruption):
    pass


@register_corruption("gaussian")
class GaussianNoise(Corruption):
    """x + sigma * N(0, 1), clipped to ``clip`` (the data range, [0, 1] for images) unless
    ``clip`` is None. The Keras denoising tutorials' 'noise factor 0.4' is sigma=0.4."""

    param_names = ("sigma", "clip")

    def __init__(self, sigma: float = 0.1, clip: tuple[float, float] | None = (0.0, 1.0)) -> None:
        super().__init__()
        if not (isinstance(sigma, int | float) and sigma >= 0):
            raise ConfigError(f"gaussian noise sigma must be >= 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def corrupt(self, x: Tensor) -> Tensor:
        noisy = x + self.sigma * torch.randn_like(x)
        return noisy if self.clip is None else noisy.clamp(*self.clip)

    def describe(self) -> str:
        return f"Gaussian noise with sigma {self.sigma:g} added to the input in training"


class _UnitCorruption(Corruption):
    """Base of the corruptions that zero each input unit with probability ``p`` (their one
    parameter): the range check and the parameter live here once, each subclass keeps its
    own default, kernel and wording."""

    param_names = ("p",)

    def __init__(self, kind: str, p: float) -> None:
        super().__init__()
        self.p = _probability(kind, p)


@register_corruption("dropout")
class InputDropout(_UnitCorruption):
    """Keras-style Dropout on the input: zero a fraction p, scale the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__("dropout", p)

    def corrupt(self, x: Tensor) -> Tensor:
        # a uniform draw compared in place: on CPU torch's dropout (a Bernoulli draw) costs
        # about 2.4x as much on a batch of 32 images
        if self.p == 0.0:
            return x
        return torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p)).mul_(x)

    def describe(self) -> str:
        return f"dropout of {self.p:.0%} of the input units in training (survivors rescaled)"


@register_corruption("masking")
class Masking(_UnitCorruption):
    """Masking noise (Vincent et al. 2008): zero a fraction p of the inputs, no rescaling."""

    def __init__(self, p: float = 0.25) -> None:
        super().__init__("masking", p)

    def corrupt(self, x: Tensor) -> Tensor:
        return torch.rand_like(x).ge_(self.p).mul_(x)

    def describe(self) -> str:
        return f"masking noise: {self.p:.0%} of the input units set to 0 in training"
