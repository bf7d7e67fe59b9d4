"""What stops a run that has gone wrong, and what makes a resumed run the same run.

- `DivergenceGuard` watches each step's loss: NaN/inf, or a loss above ``factor`` times the
  starting value (the first step's loss, computed before any update: an explosion) stops
  the run.
- `collapsed` tells a run whose codes are all zero (every latent dead, L0 = 0).
- `resume_differences` lists what a resumed command changes against the saved run (its
  training settings, the model, a fingerprint of the data); `with_defaults` first reads a
  setting added since the run was saved as its default, which is what that run did."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import Tensor, nn

from sparseae.errors import ConfigError

REF_STEPS = 1  # the first step's loss (before any update) is the starting value


class DivergenceGuard:
    def __init__(self, factor: float | None) -> None:
        self.factor = factor
        self.ref_sum, self.ref_n = 0.0, 0

    def problem(self, loss: float) -> str | None:
        """None while the run is healthy, else what went wrong, in a few words."""
        if not math.isfinite(loss):
            return "loss became NaN/inf"
        if self.ref_n < REF_STEPS:
            self.ref_sum += loss
            self.ref_n += 1
            return None
        ref = self.ref_sum / self.ref_n
        if self.factor is not None and loss > self.factor * max(abs(ref), 1e-12):
            return (
                f"loss exploded to {loss:.3g}, over {self.factor:g}x its starting value "
                f"{ref:.3g} (threshold: --diverge-factor)"
            )
        return None

    def state(self) -> dict[str, Any]:
        return {"ref_sum": self.ref_sum, "ref_n": self.ref_n}

    def load(self, state: dict[str, Any] | None) -> None:
        if state:
            self.ref_sum, self.ref_n = float(state["ref_sum"]), int(state["ref_n"])


@torch.no_grad()
def collapsed(model: nn.Module, rows: Tensor) -> bool:
    """True when the model's code is zero for every one of ``rows`` (in eval mode)."""
    was = model.training
    model.eval()
    try:
        code = model.step(rows).code
    finally:
        model.train(was)
    code = code.to_dense() if code.is_sparse else code
    return not bool((code != 0).any())


def fingerprint(rows: Tensor, n_rows: int) -> dict[str, Any]:
    """What identifies a training set cheaply: its size, width and its first rows' bytes."""
    sample = rows.detach().float().cpu().contiguous()
    digest = hashlib.sha256(sample.numpy().tobytes()).hexdigest()[:16]
    return {"rows": int(n_rows), "features": int(math.prod(sample.shape[1:])), "sha256": digest}


def resume_differences(
    saved: dict[str, Any], current: dict[str, Any], allowed: tuple[str, ...] = ()
) -> list[str]:
    """'name: saved -> current' for every setting that differs and is not allowed to."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if _norm(a) != _norm(b) and key not in allowed:
            out.append(f"{key}: {_short(a)} -> {_short(b)}")
    return out


def with_defaults(saved: Any, config_type: type) -> Any:
    """``saved`` read as checkpoints read a config (`Config.from_dict`: a field it lacks at
    its default) and written back; as it is where it does not read, so that the comparison
    names what differs."""
    if not isinstance(saved, dict) or not hasattr(config_type, "from_dict"):
        return saved
    try:
        return config_type.from_dict(saved).to_dict()
    except ConfigError:
        return saved


def _norm(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
