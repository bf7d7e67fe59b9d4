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


def atom_heatmaps(
    snapshots: Sequence[tuple[int, np.ndarray]], title: str, n_atoms: int = 64
) -> Figure:
    """Atoms of non-image data over training, one heatmap per snapshot (atom x feature):
    a feature vector has no 2-D layout, so tiling it as a picture would draw 1-pixel strips.
    Each atom is scaled by its largest magnitude; red/blue are the sign."""
    k = max(1, len(snapshots))
    n = min(n_atoms, np.asarray(snapshots[0][1]).shape[0]) if snapshots else 1
    fig, axes = plt.subplots(1, k, figsize=(3.4 * k, 1.2 + 0.09 * n), squeeze=False)
    im = None
    for ax, (epoch, atoms) in zip(axes[0], snapshots, strict=False):
        a = np.asarray(atoms, dtype=np.float64)[:n_atoms]
        a = a / np.maximum(np.abs(a).max(axis=1, keepdims=True), 1e-12)
        im = ax.imshow(a, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"epoch {epoch}", fontsize=9)
        ax.set_xlabel("feature", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("atom", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), fraction=0.02, label="weight / max |weight|")
    fig.suptitle(title, fontsize=10)
    return fig


def vector_reconstructions(originals: np.ndarray, reconstructed: np.ndarray, title: str) -> Figure:
    """Non-image inputs and their reconstructions, one small panel per input: the input as
    bars (grey), the reconstruction as an orange line with dots, on one feature axis."""
    x, r = np.asarray(originals), np.asarray(reconstructed)
    n, d = x.shape
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.9 * rows), squeeze=False)
    feats = np.arange(d)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.bar(feats, x[i], width=1.0, color="#b8bcc8", label="input")
        marker = "." if d <= 64 else None
        ax.plot(feats, r[i], color="#d9730d", lw=1, marker=marker, ms=3, label="reconstruction")
        ax.set_title(f"test input {i}", fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tradeoff(
    curves: dict[str, Sequence[dict]],
    title: str,
    *,
    n_latents: int,
    reference: float | None = None,
    limit: float | None = None,
) -> Figure:
    """Reconstruction error against L0, one curve per method (its sweep over its sparsity
    knob, points sorted by L0), each point labelled with the knob's value; marker area grows
    with the dead latents, so a cheap sparsity bought with dead units shows. ``reference``
    draws the matched sparsity k, ``limit`` shades the L0 range compared on MSE."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    if limit is not None:
        ax.axvspan(0.5, limit, color="#e3f1e3", zorder=0, label=f"compared on MSE (L0 ≤ {limit:g})")
    if reference is not None:
        ax.axvline(reference, color="#557", ls="--", lw=1, label=f"k = {reference:g}")
    for name, points in curves.items():
        _tradeoff_curve(ax, name, sorted(points, key=lambda p: p["l0"]), n_latents)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.8, n_latents * 1.4)
    ax.set_xlabel(f"L0: latents with |h| > 0.1 per input (of {n_latents})")
    ax.set_ylabel("test reconstruction MSE")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _tradeoff_curve(ax: plt.Axes, name: str, pts: Sequence[dict], n_latents: int) -> None:
    """One method's points joined in L0 order; labels alternate above/below the line so
    neighbouring labels do not overprint."""
    xs = [max(p["l0"], 0.5) for p in pts]
    ys = [p["test_mse"] for p in pts]
    sizes = [25 + 500 * p.get("dead_latents", 0) / max(n_latents, 1) for p in pts]
    (line,) = ax.plot(xs, ys, lw=1.4, label=name)
    ax.scatter(xs, ys, s=sizes, color=line.get_color(), edgecolor="black", lw=0.5, zorder=3)
    for i, (p, xv, yv) in enumerate(zip(pts, xs, ys, strict=True)):
        if p.get("tag"):
            offset = (6, 6) if i % 2 == 0 else (6, -11)
            ax.annotate(p["tag"], (xv, yv), textcoords="offset points", xytext=offset,
                        fontsize=7, color=line.get_color())  # fmt: skip
