"""A run's whole configuration as frozen dataclasses: the same object comes from Python, CLI
flags or a saved config.json, and is saved next to the weights so a model folder can be
rebuilt without executing anything from it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sparseae.errors import ConfigError


def _tuple(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


@dataclass(frozen=True)
class ModelConfig:
    """What the autoencoder is: backbone x sparsity x corruption (see DESIGN.md).

    ``hidden`` are the encoder's layers between the input and the code; the decoder mirrors
    them. ``code_activation`` is applied to the code layer before the sparsity mechanism
    (``sigmoid`` for KL, ``relu`` for L1, ``linear`` for a k-sparse AE...).
    """

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", _tuple(self.hidden))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", _tuple(self.input_shape))
        # JSON-canonical (tuples -> lists) so a config equals itself after save/load
        object.__setattr__(self, "backbone_params", _json_canonical(self.backbone_params))
        for name in ("d_in", "n_latents"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden sizes must be positive integers, got {list(self.hidden)}")
        if self.loss not in ("mse", "bce"):
            raise ConfigError(f"unknown loss {self.loss!r}: choose mse or bce")
        if self.output_activation not in ("sigmoid", "linear"):
            raise ConfigError(
                f"unknown output activation {self.output_activation!r}: choose sigmoid or linear"
            )
        if self.loss == "bce" and self.output_activation != "sigmoid":
            raise ConfigError(
                "bce loss needs a sigmoid output (targets and outputs in [0, 1]): "
                "use output_activation='sigmoid' or loss='mse'"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**_known_fields(cls, data))

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainConfig:
    """How the model is trained. ``weight_decay`` is L2 on weight matrices (not biases),
    added to the gradient as Adam's coupled L2 does, i.e. the textbook 'AE + L2'."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-7  # Keras' Adam epsilon; PyTorch's default is 1e-8
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | cosine | linear | onecycle
    warmup_steps: int = 0
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    max_grad_norm: float | None = None
    eval_batch_size: int = 4096
    # torch.compile the training step: benchmarks/compile_check.py measured 1.35x on the
    # small-batch MLP recipes after a one-off compile (~20 s cold on 2 cores) and nothing
    # on the arithmetic-bound SAE step, so it is opt-in
    compile: bool = False
    # MLP autoencoders train through a hand-derived forward/backward (sparseae.manual_step:
    # same loss and gradients as autograd, ~2x faster at batch 32); False forces autograd
    manual_backward: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr schedule {self.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}"
            )
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**_known_fields(cls, data))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


LR_SCHEDULES = ("constant", "cosine", "linear", "onecycle")


def _json_canonical(params: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(params)))
    except TypeError as exc:
        raise ConfigError(
            f"backbone_params must be JSON values (numbers, lists...): {exc}"
        ) from None


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    return dict(data)


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
