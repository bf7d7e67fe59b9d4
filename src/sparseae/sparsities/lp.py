"""``lp``: an Lp activity penalty, ``weight * mean_over_batch(sum_j |h_j|^p)``, with the
p-annealing of Karvonen et al. 2024 (dictionary_learning's ``PAnnealTrainer``): p moves
linearly from ``p`` to ``p_end`` over ``anneal_steps`` training steps, so training starts
from the convex L1 and ends near an L0 count. Zero entries cost 0 and pass no gradient (the
slope of ``|h|^p`` at 0 is infinite for p < 1); others are clamped at ``eps`` first.

The exponent is a pure function of the global step (`on_step`), so a resumed run anneals
exactly as the uninterrupted one."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.sparsities.base import Sparsity, check_nonnegative, register_sparsity


@register_sparsity("lp")
class LpSparsity(Sparsity):
    param_names = ("weight", "p", "p_end", "anneal_steps")
    eps: ClassVar[float] = 1e-6

    def __init__(
        self,
        n_latents: int,
        weight: float = 1e-3,
        p: float = 1.0,
        p_end: float | None = None,
        anneal_steps: int = 0,
    ) -> None:
        super().__init__(n_latents)
        self.weight = check_nonnegative("lp weight", weight)
        for name, value in (("p", p), ("p_end", p if p_end is None else p_end)):
            if isinstance(value, bool) or not (isinstance(value, int | float) and 0 < value <= 1):
                raise ConfigError(f"lp {name} must lie in (0, 1], got {value!r}")
        if isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int) or anneal_steps < 0:
            raise ConfigError(f"lp anneal_steps must be an integer >= 0, got {anneal_steps!r}")
        self.p, self.p_end = float(p), float(p if p_end is None else p_end)
        self.anneal_steps = anneal_steps
        self.current_p = self.p

    def on_step(self, step: int) -> None:
        f = min(1.0, step / self.anneal_steps) if self.anneal_steps else 1.0
        self.current_p = self.p + f * (self.p_end - self.p)

    def penalty(self, a: Tensor, h: Tensor, atom_norms: Tensor | None = None) -> Tensor:
        mag = h.abs()
        powered = torch.where(mag > 0, mag.clamp_min(self.eps).pow(self.current_p), 0.0)
        return self.weight * powered.sum(dim=-1).mean()

    def describe(self) -> str:
        anneal = (
            f", annealed to {self.p_end:g} over {self.anneal_steps} steps"
            if (self.anneal_steps and self.p_end != self.p)
            else ""
        )
        return f"Lp activity penalty, p {self.p:g}{anneal}, weight {self.weight:g}"
