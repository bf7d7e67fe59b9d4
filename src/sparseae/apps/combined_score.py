"""The detector's combined anomaly score: several views of "unlike the training rows", each a
log value standardised on the training rows, summed.

Why several views: each catches a different kind of outlier, and each alone is weaker than
the sum (`benchmarks/one_class_auroc.py`; the parts were chosen on a validation protocol
built from the training images only, see benchmarks/README.md).

- ``mse``: what the autoencoder cannot reproduce.
- ``cosine``: 1 - cosine(input, reconstruction), a wrong *shape*, blind to the row's norm,
  which the squared error confounds with anomaly.
- ``knn``: mean distance of the code to its nearest training codes (an input the model
  reconstructs well but maps where no training row lies).
- ``gauss``: Mahalanobis distance of the code under a Gaussian fitted to the training codes
  (Ledoit-Wolf shrinkage): the global shape of the code cloud, which kNN, being local, misses.
- ``input_knn``: mean distance of the unit-normalised input to its nearest unit-normalised
  training inputs: a model-free view, which catches what the model generalises to wrongly.

Training rows are scored leave-one-out for the kNN parts (their own copy excluded)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sparseae.apps.anomaly import error_features, knn_distances
from sparseae.training.evaluate import map_batches

#: every part, in the order they are summed
PARTS = ("mse", "cosine", "knn", "gauss", "input_knn")
#: the most training rows kept as the kNN reference (a seeded random subset beyond it): the
#: scoring cost and the saved folder stay bounded on large training sets
MAX_REFERENCE = 20_000
#: the most values kept of the input reference (rows x features, 256 MB of float32): wide
#: inputs keep fewer rows rather than filling memory
MAX_INPUT_VALUES = 2**26
#: the widest code given the Gaussian part (its precision matrix is latents^2 values)
MAX_GAUSS_LATENTS = 1024


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def model_views(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """What the score reads from any sparseae model: the rows (flat), their codes and their
    reconstructions, batch by batch in eval mode."""
    rows = np.asarray(x, dtype=np.float32)
    codes = map_batches(model, rows, model.encode).numpy()
    recon = map_batches(model, rows, model).numpy()
    return rows.reshape(len(rows), -1), codes.reshape(len(rows), -1), recon.reshape(len(rows), -1)


def _subset(n: int, most: int, rng: np.random.Generator) -> np.ndarray:
    """All of ``range(n)``, or a sorted seeded random subset of ``most`` of them."""
    return np.arange(n) if n <= most else np.sort(rng.choice(n, most, replace=False))


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, 0.0) + 1e-12)


@dataclass
class CombinedScore:
    """The fitted state of the combined score: the reference rows, the codes' Gaussian and
    each part's log mean and std on the training rows."""

    n_neighbors: int
    reference_codes: np.ndarray
    reference_inputs: np.ndarray | None = None
    location: np.ndarray | None = None
    precision: np.ndarray | None = None
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this score sums: those fitted (a folder saved by an older version holds
        only the first three)."""
        return tuple(p for p in PARTS if p in self.stats)

    @classmethod
    def fit(
        cls, xs: np.ndarray, codes: np.ndarray, recon: np.ndarray, n_neighbors: int, seed: int
    ) -> tuple[CombinedScore, np.ndarray]:
        """The state from the training rows (scaled inputs, codes, reconstructions), and the
        training rows' combined scores."""
        from sklearn.covariance import LedoitWolf

        rng = np.random.default_rng(seed)
        keep = _subset(len(codes), MAX_REFERENCE, rng)
        most_inputs = min(MAX_REFERENCE, max(1, MAX_INPUT_VALUES // max(xs.shape[1], 1)))
        keep_inputs = _subset(len(xs), most_inputs, rng)
        parts = [p for p in PARTS if p != "gauss" or codes.shape[1] <= MAX_GAUSS_LATENTS]
        score = cls(
            n_neighbors=n_neighbors,
            reference_codes=codes[keep].astype(np.float32),
            reference_inputs=unit_rows(xs[keep_inputs]),
            stats={p: (0.0, 1.0) for p in parts},
        )
        if "gauss" in parts:
            gauss = LedoitWolf().fit(codes.astype(np.float64))
            score.location, score.precision = gauss.location_, gauss.precision_
        raw = score.raw_parts(xs, codes, recon, training=True)
        for name in parts:
            logs = _log(raw[name])
            std = float(logs.std())
            score.stats[name] = (float(logs.mean()), std if std > 0 else 1.0)
        return score, score.combine(raw)

    def raw_parts(
        self, xs: np.ndarray, codes: np.ndarray, recon: np.ndarray, training: bool = False
    ) -> dict[str, np.ndarray]:
        """Each part's raw value per row (leave-one-out kNN when ``training``)."""
        parts = error_features(xs, recon)
        parts["knn"] = self._knn(self.reference_codes, codes, training)
        if "gauss" in self.parts:
            centred = codes.astype(np.float64) - self.location
            parts["gauss"] = np.einsum("ij,jk,ik->i", centred, self.precision, centred)
        if "input_knn" in self.parts:
            parts["input_knn"] = self._knn(self.reference_inputs, unit_rows(xs), training)
        return parts

    def _knn(self, reference: np.ndarray, queries: np.ndarray, training: bool) -> np.ndarray:
        """Mean distance to the ``n_neighbors`` nearest reference rows (fewer if it is small)."""
        k = min(self.n_neighbors, max(len(reference) - int(training), 1))
        return knn_distances(reference, queries, k, exclude_self=training)

    def combine(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        """Sum of the parts' log values, each standardised by the training rows' mean, std."""
        total = np.zeros(len(raw["mse"]))
        for name in self.parts:
            mean, std = self.stats[name]
            total += (_log(raw[name]) - mean) / std
        return total

    # -- persistence --------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """The arrays to save (safetensors)."""
        arrays = {
            "codes": self.reference_codes,
            "inputs": self.reference_inputs,
            "location": self.location,
            "precision": self.precision,
        }
        return {
            k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if v is not None
        }

    @classmethod
    def from_saved(
        cls, tensors: dict[str, torch.Tensor], stats: dict[str, list[float]], n_neighbors: int
    ) -> CombinedScore:
        """Counterpart of `tensors` and `stats` (older folders: codes and three parts only)."""
        arrays = {k: v.numpy() for k, v in tensors.items()}
        return cls(
            n_neighbors=n_neighbors,
            reference_codes=arrays["codes"],
            reference_inputs=arrays.get("inputs"),
            location=arrays.get("location"),
            precision=arrays.get("precision"),
            stats={k: (float(v[0]), float(v[1])) for k, v in stats.items()},
        )
