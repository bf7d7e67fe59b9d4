"""Where tensors live: one rule for every command, the trainer and the estimator."""

from __future__ import annotations

import torch
from torch import nn

from sparseae.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for, but no CUDA GPU is visible: use --device cpu"
        )
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None


def model_device(model: nn.Module) -> torch.device:
    """Where a model lives (models with buffers only, like the sparse-coding learner, too)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")
