"""The compare study's methods and settings, apart from the study's code so that the command
line can show them (``sparseae compare --help``) without importing PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sparseae.errors import ConfigError

METHODS = ("plain", "l2", "kl", "arora", "topk")

#: each method's name in the report's sentences and headings
LABELS = {
    "plain": "plain autoencoder",
    "l2": "autoencoder + L2 weight decay",
    "kl": "KL sparse autoencoder (Ng)",
    "arora": "neural sparse coding (Arora et al. 2015)",
    "topk": "k-sparse autoencoder (Makhzani & Frey)",
}

#: rows of training data in the untimed warm-up before each method's timed run
WARMUP_ROWS = 256

#: short names, for the title
SHORT = {"plain": "plain AE", "l2": "L2", "kl": "KL", "arora": "Arora", "topk": "top-k"}

#: where each method comes from, cited in the report (titles, not links: the page is offline)
REFERENCES = {
    "plain": "A single-hidden-layer sigmoid autoencoder: the baseline of Andrew Ng's CS294A "
    'lecture notes "Sparse autoencoder" (Stanford, 2011), without the sparsity penalty.',
    "l2": 'The same network with L2 weight decay on the weights (Krogh & Hertz, "A Simple '
    'Weight Decay Can Improve Generalization", NIPS 1991): it shrinks weights, not codes.',
    "kl": 'Andrew Ng, "Sparse autoencoder", CS294A lecture notes (Stanford, 2011): a KL '
    "penalty pulls each latent's mean activation towards the target rate rho.",
    "arora": 'S. Arora, R. Ge, T. Ma, A. Moitra, "Simple, Efficient, and Neural Algorithms '
    'for Sparse Coding" (COLT 2015): hard-thresholded codes and a Hebbian-like dictionary '
    "update, no backpropagation.",
    "topk": 'A. Makhzani, B. Frey, "k-Sparse Autoencoders" (ICLR 2014): keep the k largest '
    "latents of a linear code, tied weights, alpha*k kept at inference.",
}

#: each method's sparsity knob swept by ``--sweep``: method -> (setting, name shown)
SWEEP_KNOBS = {
    "l2": ("weight_decay", "weight decay"),
    "kl": ("rho", "rho"),
    "arora": ("k", "target L0"),
    "topk": ("k", "k"),
}


@dataclass
class CompareSettings:
    """Shared budget and per-method knobs; defaults give a readable report on digits, the
    sweep included, in well under a minute on two CPU cores."""

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
    #: also train each method at two more values of its sparsity knob (the trade-off curve)
    sweep: bool = True

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


def sweep_values(method: str, s: CompareSettings) -> list[float]:
    """The sweep's grid for one method: half, the setting itself and twice it (a decade
    either side for weight decay, whose effect is logarithmic), so three runs per method
    place it on the error-vs-L0 plane; an empty list for a method without a knob."""
    if method not in SWEEP_KNOBS:
        return []
    if method in ("topk", "arora"):
        grid = [max(1, s.k // 2), s.k, min(s.hidden, 2 * s.k)]
    elif method == "kl":
        grid = [s.rho / 2, s.rho, min(0.5, 2 * s.rho)]
    else:
        wd = s.weight_decay or 1e-4
        grid = [wd / 10, wd, wd * 10]
    return sorted(set(grid))
