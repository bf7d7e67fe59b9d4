"""Rules every model applies to its code layer, so a sparsity means the same everywhere."""

from __future__ import annotations

from sparseae.errors import ConfigError
from sparseae.sparsities import Sparsity

#: activations whose output lies strictly inside (0, 1): the only codes KL sparsity accepts
UNIT_INTERVAL_ACTIVATIONS = frozenset({"sigmoid"})
#: non-decreasing activations: selecting the top entries before or after them is the same,
#: so sparse kernels may select on the pre-activation
MONOTONE_ACTIVATIONS = frozenset({"relu", "linear", "sigmoid", "tanh", "leaky_relu", "elu"})


def check_code_activation(sparsity: Sparsity, code_activation: str) -> None:
    """Refuse a code activation the mechanism cannot work with (KL needs a code in (0, 1))."""
    if sparsity.needs_unit_interval and code_activation not in UNIT_INTERVAL_ACTIVATIONS:
        raise ConfigError(
            f"{sparsity.name} sparsity needs a code in (0, 1), but the code activation is "
            f"{code_activation!r}: use code_activation='sigmoid' (--code-activation sigmoid)"
        )


def sparse_kernels_apply(sparsity: Sparsity, code_activation: str) -> bool:
    """Whether a one-layer dictionary may run the sparse kernels: the mechanism names its
    kept entries, adds no penalty (which would need the dense code) and the activation is
    monotone (so selecting on the pre-activation is selecting on the code)."""
    return (
        sparsity.sparse_support
        and type(sparsity).penalty is Sparsity.penalty
        and code_activation in MONOTONE_ACTIVATIONS
    )
