"""Matryoshka SAE (Bussmann et al. 2025; Nabeshima 2024): nested prefixes of one dictionary
each reconstruct the input, so the first latents learn the broad features and later ones
refine them, instead of large dictionaries splitting features arbitrarily.

    loss = mse(x, decode(h)) + sum_{w in widths} mse(x, h[:, :w] @ W_dec[:w] + b_dec)

``widths`` are the inner prefix sizes, strictly increasing and below ``n_latents`` (the
whole dictionary is the outer level, the plain SAE's term). The code is the SAE's (BatchTopK
by default, the paper's), so everything else — sparse kernels, the dictionary tricks,
checkpoints, interop where the peer has the architecture — is the dictionary SAE's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.nn import functional as F

from sparseae.config import Each, Range
from sparseae.errors import ConfigError
from sparseae.models.base import MODEL_KINDS, StepOutput
from sparseae.models.sae import kernels
from sparseae.models.sae.config import SAEConfig
from sparseae.models.sae.model import SAE


@dataclass(frozen=True)
class MatryoshkaConfig(SAEConfig):
    sparsity: str = "batchtopk"
    widths: tuple[int, ...] = field(default_factory=tuple)

    constraints = {**SAEConfig.constraints, "widths": Each(Range(int, 1))}

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        super().__post_init__()
        w = self.widths
        if not w:
            raise ConfigError("a Matryoshka SAE needs widths (its inner prefix sizes), e.g. 16,64")
        if any(b <= a for a, b in zip(w, w[1:], strict=False)) or w[-1] >= self.n_latents:
            raise ConfigError(
                f"matryoshka widths must increase strictly and stay below n_latents "
                f"({self.n_latents}), got {list(w)}"
            )


class MatryoshkaSAE(SAE):
    checkpoint_kind = "matryoshka_sae"

    def __init__(self, config: MatryoshkaConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config if config is not None else MatryoshkaConfig(**kwargs))

    def prefix_reconstructions(self, code: Tensor) -> list[Tensor]:
        """decode of h[:, :w] for each inner width (dense code)."""
        return [code[:, :w] @ self.W_dec[:w] + self.b_dec for w in self.config.widths]

    def _step(self, x: Tensor) -> StepOutput:
        f = self.forward_parts(x)
        recon = F.mse_loss(f.x_hat, x)
        inner = {f"prefix_{w}": F.mse_loss(x_hat, x) for w, x_hat in self._prefixes(f, x)}
        terms = {"recon": recon, "sparsity": f.penalty, **inner}
        total = recon + f.penalty + sum(inner.values())
        return StepOutput(total, terms, f.code, f.pre, f.x_hat.detach())

    def _prefixes(self, f: Any, x: Tensor) -> list[tuple[int, Tensor]]:
        if f.dense is not None:
            return list(zip(self.config.widths, self.prefix_reconstructions(f.dense), strict=True))
        rows, cols, vals = f.sparse
        out = []
        for w in self.config.widths:
            keep = cols < w  # rows stay ascending: a prefix is a subset of each bag
            part = kernels.sparse_decode(rows[keep], cols[keep], vals[keep], self.W_dec, x.shape[0])
            out.append((w, part + self.b_dec))
        return out

    def describe(self) -> str:
        return f"Matryoshka {super().describe()}; nested prefixes {list(self.config.widths)}"


@MODEL_KINDS.register("matryoshka_sae")
def _build(config: dict[str, Any], source: str | None = None) -> MatryoshkaSAE:
    return MatryoshkaSAE(MatryoshkaConfig.from_dict(config, source))
