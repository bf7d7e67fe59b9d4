"""`InputTransform`: the input scaling fitted at training time, carried by the model.

Every scaling sparseae fits is one per-feature affine map, optionally clipped:

    x' = clip((x - shift) * scale)        minmax: shift = min, scale = 1 / (max - min), clip [0, 1]
                                          standard: shift = mean, scale = 1 / std
                                          norm (SAELens): shift = 0, scale = s with E||s x||^2 = d

The model keeps it as buffers, so it is saved in model.safetensors with the weights, and
``encode``/``forward`` apply it to raw inputs: codes for ``5x + 100`` differ from codes for
``x``, as they must. Training feeds already-transformed data to ``step`` (the loaders scale
once, in NumPy), which is why the transform sits outside ``step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


class InputTransform(nn.Module):
    """Identity until `set` (or a loaded checkpoint) gives it a fitted scaling."""

    def __init__(self, d_in: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(d_in))
        self.register_buffer("scale", torch.ones(d_in))
        # [low, high]; low > high means no clipping
        self.register_buffer("clip", torch.tensor([1.0, 0.0]))
        self.active = False
        self.register_load_state_dict_post_hook(_refresh_after_load)

    def _refresh(self) -> None:
        self.active = bool(
            self.shift.abs().max() > 0 or (self.scale - 1).abs().max() > 0 or self.clips
        )

    @property
    def clips(self) -> bool:
        return bool(self.clip[0] <= self.clip[1])

    @torch.no_grad()
    def set(self, shift: Any, scale: Any, clip: tuple[float, float] | None = None) -> None:
        """Install a fitted scaling (arrays or numbers, broadcast to d_in)."""
        d = self.shift.numel()

        def full(v: Any) -> Tensor:  # a writable copy: torch warns on the read-only view
            return torch.from_numpy(np.array(np.broadcast_to(np.asarray(v, np.float32), (d,))))

        self.shift.copy_(full(shift))
        self.scale.copy_(full(scale))
        self.clip.copy_(torch.tensor(clip if clip is not None else (1.0, 0.0)))
        self._refresh()

    def forward(self, x: Tensor) -> Tensor:
        if not self.active:
            return x
        shape = x.shape
        out = (x.reshape(shape[0], -1) - self.shift) * self.scale
        if self.clips:
            out = out.clamp(float(self.clip[0]), float(self.clip[1]))
        return out.reshape(shape)

    def inverse(self, x: Tensor) -> Tensor:
        """Back to raw units (where the scale is 0, a constant feature, the shift)."""
        if not self.active:
            return x
        shape = x.shape
        safe = torch.where(self.scale != 0, self.scale, torch.ones_like(self.scale))
        out = torch.where(self.scale != 0, x.reshape(shape[0], -1) / safe, 0.0) + self.shift
        return out.reshape(shape)

    def describe(self) -> str:
        if not self.active:
            return "none"
        clip = (
            f", clipped to [{float(self.clip[0]):g}, {float(self.clip[1]):g}]" if self.clips else ""
        )
        return f"per-feature (x - shift) * scale{clip}"


def _refresh_after_load(module: InputTransform, incompatible_keys: Any) -> None:
    module._refresh()
