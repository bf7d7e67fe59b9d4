"""``l1_decnorm``: the L1 penalty weighted by each latent's decoder-atom norm,
``weight * mean_over_batch(sum_j |h_j| * ||d_j||)`` — the standard ReLU SAE of Anthropic's
April 2024 update, trained with a free decoder norm. Unlike plain ``l1`` it cannot be
gamed by shrinking a latent and growing its atom: scaling a latent's encoder column by c and
its atom by 1/c leaves the reconstruction and the penalty unchanged."""

from __future__ import annotations

from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.sparsities.base import Sparsity, check_nonnegative, register_sparsity


@register_sparsity("l1_decnorm")
class DecoderNormL1Sparsity(Sparsity):
    param_names = ("weight",)
    needs_atom_norms = True

    def __init__(self, n_latents: int, weight: float = 1e-3) -> None:
        super().__init__(n_latents)
        self.weight = check_nonnegative("l1_decnorm weight", weight)

    def penalty(self, a: Tensor, h: Tensor, atom_norms: Tensor | None = None) -> Tensor:
        if atom_norms is None:
            raise ConfigError(
                "l1_decnorm weighs latents by their decoder atoms: use it on a model with a "
                "linear dictionary (an SAE, or an mlp autoencoder without hidden layers)"
            )
        return self.weight * (h.abs() * atom_norms).sum(dim=-1).mean()

    def describe(self) -> str:
        return f"L1 weighted by decoder-atom norms, weight {self.weight:g}"
