"""The sparsity contract: how the code layer's activation becomes the sparse code, what that
code costs, and what sparse kernels and hand-derived steps need to know about it.

Every model applies a mechanism the same way, so a sparsity means the same thing everywhere:

    a = code_activation(z)          z: the code layer's pre-activation (the model's job)
    h = sparsity.activate(a)        the code
    loss += sparsity.penalty(a, h)  a per-batch cost, added to a mean-over-elements loss

A mechanism is one subclass in its own file, registered in `SPARSITIES`; adding one touches
no model, trainer or CLI code. It keeps no state between calls beyond what it saves as a
parameter or buffer (BatchTopK's running threshold, JumpReLU's learned threshold).

Penalty scale (stated once, used everywhere): the reconstruction loss is a mean over elements
and samples, and ``penalty`` is a per-batch quantity added to it unchanged; see `l1.py` and
`kl.py` for how that relates to Keras' activity regularisers.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor, nn

from sparseae.errors import ConfigError
from sparseae.registry import Registry

#: name -> Sparsity subclass; filled by the mechanism files (imported by the package)
SPARSITIES: Registry[type[Sparsity]] = Registry("sparsity")


class Sparsity(nn.Module):
    """Base class. A subclass sets ``param_names`` (its constructor arguments, saved in
    config.json) and overrides what differs from the identity mechanism.

    Class flags a model reads:
    - ``needs_unit_interval``: the code must lie in (0, 1) (KL), so a model refuses a code
      activation that cannot deliver that.
    - ``fused``: `fused_penalty` and `fused_backward` are exact, so a hand-derived training
      step (no autograd) may use this mechanism.
    - ``sparse_support``: `support` returns the kept entries, so a model may run sparse
      kernels over them instead of dense (batch x latents) products.
    - ``needs_atom_norms``: `penalty` weighs latents by their decoder atoms' norms, so a
      model passes ``atom_norms`` (a model without a linear dictionary refuses it).
    """

    name: ClassVar[str] = "base"
    param_names: ClassVar[tuple[str, ...]] = ()
    needs_unit_interval: ClassVar[bool] = False
    fused: ClassVar[bool] = False
    sparse_support: ClassVar[bool] = False
    needs_atom_norms: ClassVar[bool] = False

    def __init__(self, n_latents: int) -> None:
        super().__init__()
        if not isinstance(n_latents, int) or n_latents < 1:
            raise ConfigError(f"n_latents must be an integer >= 1, got {n_latents!r}")
        self.n_latents = int(n_latents)

    # -- the mechanism ------------------------------------------------------------------------
    def activate(self, a: Tensor) -> Tensor:
        """The code h from the code layer's activation a (identity unless overridden)."""
        return a

    def penalty(self, a: Tensor, h: Tensor, atom_norms: Tensor | None = None) -> Tensor:
        """The per-batch cost of the code; ``a`` is what `activate` was given, ``h`` what it
        returned (both are needed by threshold mechanisms, whose STE looks below the cut);
        ``atom_norms`` (n_latents,) where the mechanism ``needs_atom_norms``."""
        return h.new_zeros(())

    def forward(self, a: Tensor) -> Tensor:
        return self.activate(a)

    def on_step(self, step: int) -> None:
        """Called by the trainer before each training step with the global step, for
        mechanisms whose parameters follow a schedule (a pure function of the step, so
        resume is exact). The trainer only calls it where a subclass overrides it."""

    # -- for sparse kernels (``sparse_support``) ----------------------------------------------
    def support(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """(rows, cols) of the entries `activate` keeps, rows ascending. Valid on any
        monotone transform of ``a`` too, which is what lets a model select on the raw
        pre-activation and apply its code activation to the kept values only."""
        raise NotImplementedError(f"{self.name} sparsity has no sparse support")

    def kept_values(self, v: Tensor) -> Tensor:
        """The code's values at the support, from the activation's values there."""
        return v

    # -- for hand-derived steps (``fused``) ---------------------------------------------------
    def fused_penalty(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """The penalty and its gradient with respect to h (None when it is zero)."""
        return h.new_zeros(()), None

    def fused_backward(self, grad_h: Tensor, h: Tensor) -> Tensor:
        """The gradient with respect to a, given the gradient with respect to h = activate(a)."""
        return grad_h

    # -- description --------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The constructor arguments, for saving to config.json."""
        return {name: getattr(self, name) for name in self.param_names}

    def describe(self) -> str:
        return self.name

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params().items())


def sparsity_names() -> tuple[str, ...]:
    return SPARSITIES.names()


def sparsity_class(name: str) -> type[Sparsity]:
    return SPARSITIES.get(name)


def make_sparsity(name: str, n_latents: int, **params: Any) -> Sparsity:
    """Build a mechanism from its name and parameters, with errors a user can act on."""
    cls = SPARSITIES.get(name)
    unknown = set(params) - set(cls.param_names)
    if unknown:
        allowed = ", ".join(cls.param_names) or "none"
        raise ConfigError(
            f"sparsity {name!r} takes no parameter {', '.join(sorted(unknown))} "
            f"(its parameters: {allowed})"
        )
    return cls(n_latents=n_latents, **params)


def register_sparsity(name: str):  # noqa: ANN201 - decorator
    """Class decorator: make a mechanism available by name to models, configs and the CLI."""

    def wrap(cls: type[Sparsity]) -> type[Sparsity]:
        cls.name = name
        SPARSITIES.add(name, cls)
        return cls

    return wrap


# -- parameter checks shared by the mechanisms --------------------------------------------------
def check_nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and math.isfinite(value) and value >= 0
    ):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and math.isfinite(value) and value > 0
    ):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_k(name: str, k: Any, n_latents: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n_latents:
        raise ConfigError(
            f"{name} needs 1 <= k <= n_latents ({n_latents}), got k={k!r}: "
            "lower k or raise the number of latents"
        )
    return int(k)
