"""``lp``: an Lp^p activity penalty, ``weight * scale * mean_over_batch(sum_j |h_j|^p)``,
with the p-annealing of Karvonen et al. 2024 (dictionary_learning's ``PAnnealTrainer``):
training starts from the convex L1 and moves p towards an L0 count.

Why each part is there:
- **Schedule.** p holds at ``p`` until ``anneal_start``, then steps down to ``p_end`` in
  ``stages`` equal steps spread over the next ``anneal_steps`` training steps (``stages``
  None: every step, a linear ramp). The exponent is a pure function of the global step.
- **Rescaling** (``rescale``). For codes below 1, |h|^p grows as p falls (0.01^0.2 is 40x
  0.01^1), so a fixed weight would tighten the penalty by orders of magnitude as p anneals
  and the code would collapse, or loosen it for codes above 1. So at each change of p the
  coefficient ``scale`` is multiplied by mean Lp^p(old p) / mean Lp^p(new p), both measured
  on the codes of the last `window` training steps before the change: the penalty keeps its
  magnitude at the switch and only its shape changes.
- **Decoder norms** (``decoder_norm``). With a free decoder an SAE can shrink a latent and
  grow its atom, which lowers |h|^p at no cost to the reconstruction; the peer keeps atoms
  at unit norm (sparseae's default ``unit_norm_decoder`` for an SAE does too). With
  ``decoder_norm`` the penalty is on |h_j| * ||d_j|| instead, which cannot be gamed that way
  and equals the unweighted penalty when atoms have unit norm.

Zero entries cost 0 and pass no gradient (the slope of ``|h|^p`` at 0 is infinite for
p < 1); others are clamped at ``eps`` first.

Resume: ``scale``, the running sums of the current window and the index of the last stage
applied are buffers (saved with the model and in the trainer state); everything else is
recomputed from the global step in `on_step`, so a resumed run anneals exactly as the
uninterrupted one. Under DDP the sums are all-reduced at a change of p, so every rank
applies the same ``scale``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch import distributed as dist

from sparseae.errors import ConfigError
from sparseae.sparsities.base import Sparsity, check_nonnegative, register_sparsity


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"lp {name} must be an integer >= {low}, got {value!r}")
    return value


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"lp {name} must be true or false, got {value!r}")
    return value


@register_sparsity("lp")
class LpSparsity(Sparsity):
    param_names = (
        "weight", "p", "p_end", "anneal_steps", "anneal_start", "stages", "rescale",
        "decoder_norm",
    )  # fmt: skip
    eps: ClassVar[float] = 1e-6
    #: training steps before a change of p whose codes measure the rescaling ratio (the
    #: peer's queue length): recent enough to describe the current code, long enough to
    #: average out one batch
    window: ClassVar[int] = 10

    def __init__(
        self,
        n_latents: int,
        weight: float = 1e-3,
        p: float = 1.0,
        p_end: float | None = None,
        anneal_steps: int = 0,
        anneal_start: int = 0,
        stages: int | None = None,
        rescale: bool = True,
        decoder_norm: bool = False,
    ) -> None:
        super().__init__(n_latents)
        self.weight = check_nonnegative("lp weight", weight)
        for name, value in (("p", p), ("p_end", p if p_end is None else p_end)):
            if isinstance(value, bool) or not (isinstance(value, int | float) and 0 < value <= 1):
                raise ConfigError(f"lp {name} must lie in (0, 1], got {value!r}")
        self.p, self.p_end = float(p), float(p if p_end is None else p_end)
        self.anneal_steps = _check_int("anneal_steps", anneal_steps, 0)
        self.anneal_start = _check_int("anneal_start", anneal_start, 0)
        self.stages = None if stages is None else _check_int("stages", stages, 1)
        self.rescale = _check_flag("rescale", rescale)
        self.decoder_norm = _check_flag("decoder_norm", decoder_norm)
        self.needs_atom_norms = self.decoder_norm  # read by the model on the instance
        self.annealing = bool(self.anneal_steps) and self.p_end != self.p
        self.n_stages = min(self.stages or self.anneal_steps, self.anneal_steps)
        self.current_p = self.p
        self._step = 0
        self._measure = False  # whether this step's codes feed the rescaling sums
        if self.annealing and self.rescale:
            self.register_buffer("scale", torch.tensor(1.0))
            # Lp^p sums at the current and at the next exponent, and the steps summed
            self.register_buffer("sums", torch.zeros(3))
            self.register_buffer("stage_applied", torch.tensor(0, dtype=torch.int64))

    # -- the schedule: pure functions of the global step -----------------------------------
    def stage_at(self, step: int) -> int:
        """Index of the exponent in force at ``step`` (0: ``p``; ``n_stages``: ``p_end``)."""
        if not self.annealing or step < self.anneal_start:
            return 0
        done = step - self.anneal_start
        return min(self.n_stages, done * self.n_stages // self.anneal_steps)

    def p_of_stage(self, stage: int) -> float:
        if not self.annealing:
            return self.p
        return self.p + stage / self.n_stages * (self.p_end - self.p)

    def stage_begins(self, stage: int) -> int:
        """The first step of ``stage`` (the inverse of `stage_at`)."""
        return self.anneal_start + -(-stage * self.anneal_steps // self.n_stages)

    def on_step(self, step: int) -> None:
        stage = self.stage_at(step)
        self._step = step
        self.current_p = self.p_of_stage(stage)
        if not (self.annealing and self.rescale):
            return
        if stage > int(self.stage_applied):
            self._apply_ratio(stage)
        nxt = stage + 1
        self._measure = nxt <= self.n_stages and self.stage_begins(nxt) - step <= self.window

    @torch.no_grad()
    def _apply_ratio(self, stage: int) -> None:
        """Carry the penalty's magnitude over a change of p (see the module docstring)."""
        sums = self.sums.clone()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(sums)  # every rank applies the same scale
        old, new = float(sums[0]), float(sums[1])
        if old > 0 and new > 0 and math.isfinite(old / new):
            self.scale.mul_(old / new)
        self.sums.zero_()
        self.stage_applied.fill_(stage)

    # -- the mechanism --------------------------------------------------------------------------
    def _lpp(self, mag: Tensor, p: float) -> Tensor:
        """Mean over the batch of sum_j |h_j|^p (zeros count 0 and pass no gradient)."""
        return _PowerSum.apply(mag, p, self.eps) / mag.shape[0]

    def penalty(self, a: Tensor, h: Tensor, atom_norms: Tensor | None = None) -> Tensor:
        mag = h.abs()
        if self.decoder_norm:
            if atom_norms is None:
                raise ConfigError(
                    "lp with decoder_norm weighs latents by their decoder atoms: use it on a "
                    "model with a linear dictionary (an SAE, or an mlp autoencoder without "
                    "hidden layers)"
                )
            mag = mag * atom_norms
        value = self._lpp(mag, self.current_p)
        if not (self.annealing and self.rescale):
            return self.weight * value
        if self._measure and self.training:
            with torch.no_grad():
                nxt = self._lpp(mag.detach(), self.p_of_stage(self.stage_at(self._step) + 1))
                self.sums.add_(torch.stack([value.detach(), nxt, torch.ones_like(nxt)]).float())
        return (self.weight * self.scale) * value

    def describe(self) -> str:
        anneal = ""
        if self.annealing:
            how = "linearly" if self.n_stages == self.anneal_steps else f"in {self.n_stages} stages"
            anneal = (
                f", annealed to {self.p_end:g} {how} over steps {self.anneal_start}-"
                f"{self.anneal_start + self.anneal_steps}"
                + (" (coefficient rescaled at each change)" if self.rescale else "")
            )
        norm = " of |h| x decoder-atom norm" if self.decoder_norm else ""
        return f"Lp^p activity penalty{norm}, p {self.p:g}{anneal}, weight {self.weight:g}"


class _PowerSum(torch.autograd.Function):
    """sum of where(m > 0, max(m, eps)^p, 0) for m >= 0, and its gradient p max(m, eps)^(p-1)
    where m >= eps (clamp_min's own mask), 0 elsewhere: what autograd derives for that
    expression, with one power instead of two (the backward divides the forward's powers by
    max(m, eps)) and masks applied as products (``where`` and ``masked_fill`` take 5x longer
    on a CPU). On MiniLM's 256 x 1,536 code those passes were a quarter of the p-annealing
    step."""

    @staticmethod
    def forward(ctx: Any, m: Tensor, p: float, eps: float) -> Tensor:  # type: ignore[override]
        powered = m.clamp_min(eps).pow_(p).mul_(torch.sign(m))  # m >= 0: sign is the m > 0 mask
        ctx.save_for_backward(m, powered)
        ctx.p, ctx.eps = p, eps
        return powered.sum()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        m, powered = ctx.saved_tensors
        slope = powered.div(m.clamp_min(ctx.eps)).mul_(grad * ctx.p)
        return slope.mul_(m >= ctx.eps), None, None
