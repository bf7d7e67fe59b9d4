"""The compare study's methods and settings, apart from the study's code so that the command
line can show them (``sparseae compare --help``) without importing PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sparseae.errors import ConfigError

METHODS = ("plain", "l2", "kl", "arora", "topk")


@dataclass
class CompareSettings:
    """Shared budget and per-method knobs; defaults give a readable report on digits in
    about a minute on two CPU cores."""

    methods: Sequence[str] = METHODS
    hidden: int = 100
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-4
    rho: float = 0.05
    kl_weight: float = 0.03
    k: int = 10
    alpha: float = 1.0
    arora_lr: float = 0.05
    seed: int = 0
    n_atoms: int = 64
    snapshots: int = 4

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(
                f"unknown method {', '.join(unknown)}: choose from {', '.join(METHODS)}"
            )
        if not self.methods:
            raise ConfigError(f"no method chosen: choose from {', '.join(METHODS)}")
        if "topk" in self.methods and self.k > self.hidden:
            raise ConfigError(
                f"topk keeps k={self.k} of {self.hidden} hidden units: raise --n-latents to at "
                f"least {self.k} or lower --k"
            )
        if "arora" in self.methods and self.k > self.hidden:
            raise ConfigError(f"k={self.k} exceeds --n-latents {self.hidden}")
