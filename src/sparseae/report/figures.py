"""Figures people look at: learned filters, reconstructions, loss curves, activation heatmaps.

Every function returns a matplotlib Figure made with the Agg backend (no display needed);
`save_png` writes it and closes it, so long studies do not accumulate open figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def contrast_normalise(atoms: np.ndarray) -> np.ndarray:
    """Scale each atom to [0, 1] on its own: filters differ wildly in scale, and a shared
    colour scale would show only the strongest."""
    atoms = np.asarray(atoms, dtype=np.float64)
    lo = atoms.min(axis=1, keepdims=True)
    hi = atoms.max(axis=1, keepdims=True)
    return (atoms - lo) / np.where(hi - lo > 0, hi - lo, 1.0)


def tile(atoms: np.ndarray, image_shape: tuple[int, int], cols: int | None = None) -> np.ndarray:
    """Arrange (n, h*w) images into one mosaic with 1-pixel gaps."""
    n = atoms.shape[0]
    h, w = image_shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    mosaic = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1))
    for i in range(n):
        r, c = divmod(i, cols)
        mosaic[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = (
            atoms[i].reshape(h, w)
        )
    return mosaic


def _image_shape(d: int, image_shape: tuple[int, int] | None) -> tuple[int, int]:
    if image_shape is not None:
        return tuple(image_shape)  # type: ignore[return-value]
    side = int(round(math.sqrt(d)))
    return (side, side) if side * side == d else (1, d)


def filter_progression(
    snapshots: Sequence[tuple[int, np.ndarray]],
    image_shape: tuple[int, int] | None,
    title: str,
    n_atoms: int = 64,
) -> Figure:
    """One panel per snapshot (epoch, atoms): the same first ``n_atoms`` atoms each time, so
    the eye can follow one filter from random to learned."""
    k = max(1, len(snapshots))
    fig, axes = plt.subplots(1, k, figsize=(3.4 * k, 3.7), squeeze=False)
    for ax, (epoch, atoms) in zip(axes[0], snapshots, strict=False):
        atoms = np.asarray(atoms)[:n_atoms]
        shape = _image_shape(atoms.shape[1], image_shape)
        ax.imshow(tile(contrast_normalise(atoms), shape), cmap="gray", interpolation="nearest")
        ax.set_title(f"epoch {epoch}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return fig


def reconstructions(
    originals: np.ndarray,
    reconstructed: np.ndarray,
    image_shape: tuple[int, int] | None,
    title: str,
    rows: Sequence[str] = ("original", "reconstruction"),
    extra: Sequence[np.ndarray] = (),
) -> Figure:
    """Rows of images: originals, reconstructions (and any extra rows, e.g. noisy inputs)."""
    data = [np.asarray(originals), np.asarray(reconstructed), *map(np.asarray, extra)]
    n = data[0].shape[0]
    shape = _image_shape(data[0].shape[1], image_shape)
    fig, axes = plt.subplots(len(data), n, figsize=(1.1 * n, 1.2 * len(data)), squeeze=False)
    for r, imgs in enumerate(data):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(np.clip(imgs[c].reshape(shape), 0, 1), cmap="binary", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0 and r < len(rows):
                ax.set_ylabel(rows[r], fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def loss_curves(curves: dict[str, Sequence[float]], ylabel: str, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def activation_heatmaps(
    panels: dict[str, np.ndarray], column_labels: Sequence[str], title: str
) -> Figure:
    """Side-by-side heatmaps of codes (neurons x inputs); exact zeros are shown white, so
    'which neurons fire' is visible at a glance."""
    k = len(panels)
    fig, axes = plt.subplots(1, k, figsize=(3.6 * k, 4.2), squeeze=False)
    for ax, (name, codes) in zip(axes[0], panels.items(), strict=True):
        mat = np.asarray(codes, dtype=float).T  # neurons x inputs
        masked = np.ma.masked_where(mat == 0, mat)
        cmap = plt.get_cmap("viridis").with_extremes(bad="white")
        im = ax.imshow(masked, aspect="auto", cmap=cmap, interpolation="nearest")
        ax.set_xticks(range(len(column_labels)), column_labels, fontsize=8)
        ax.set_yticks(range(mat.shape[0]), [str(i) for i in range(mat.shape[0])], fontsize=7)
        ax.set_xlabel("input (one test image per class)", fontsize=8)
        ax.set_ylabel("bottleneck neuron", fontsize=8)
        inactive = int((mat == 0).sum())
        ax.set_title(f"{name}\n{inactive} of {mat.size} activations are exactly 0", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def firing_frequency_histogram(
    freq: Tensor | np.ndarray, path: str | Path, *, title: str = "latent firing frequency"
) -> tuple[Path, np.ndarray]:
    """log10 firing-frequency histogram (SparsityStats.firing_frequency()), as SAELens plots
    it: dead latents (frequency 0) are counted in the title, dense ones (> 10%) are right of
    the red line. Returns the PNG's path and the bar heights drawn (alive latents per bin)."""
    f = np.asarray(freq, dtype=np.float64).reshape(-1)
    alive = f[f > 0]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    counts = np.zeros(0)
    if alive.size:
        counts, _, _ = ax.hist(np.log10(alive), bins=50, color="#4060a0")
    ax.axvline(-1.0, color="red", lw=1, label="dense (>10%)")
    ax.set_xlabel("log10 firing frequency")
    ax.set_ylabel("latents")
    ax.set_title(f"{title}: {int((f == 0).sum())} dead of {f.size}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path, np.asarray(counts)
