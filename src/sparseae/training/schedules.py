"""Schedules as pure functions of the global step, so a resumed run recomputes them exactly
from the step it saved and no schedule has state of its own to lose."""

from __future__ import annotations

import math

from sparseae.errors import ConfigError


def lr_factor(schedule: str, step: int, total: int, warmup: int, decay: int = 0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based): the
    schedule's, times a linear fall to 0 over the last ``decay`` of ``total`` steps."""
    tail = (total - step) / decay if decay and step >= total - decay else 1.0
    return _schedule_factor(schedule, step, total, warmup) * max(0.0, tail)


def _schedule_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    if schedule == "onecycle":
        warmup = warmup or max(1, int(0.3 * total))
        if step < warmup:
            return 0.04 + 0.96 * step / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(1.0, max(0.0, progress))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ConfigError(f"unknown lr schedule {schedule!r}")


def linear_warmup(start: float, target: float, steps: int, step: int) -> float:
    """``start`` at step 0, ``target`` from step ``steps`` on, linear between."""
    f = min(1.0, step / steps) if steps > 0 else 1.0
    return start + f * (target - start)
