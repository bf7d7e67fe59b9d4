"""Figures for SAE dictionaries (kept apart from viz.py, which draws image filters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor


def firing_frequency_histogram(
    freq: Tensor | np.ndarray, path: str | Path, *, title: str = "latent firing frequency"
) -> Path:
    """log10 firing-frequency histogram (SparsityStats.firing_frequency()): dead latents
    (frequency 0) are counted in the title, dense ones (> 10%) are right of the red line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = np.asarray(freq, dtype=np.float64).reshape(-1)
    alive = f[f > 0]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    if alive.size:
        ax.hist(np.log10(alive), bins=50, color="#4060a0")
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
    return path
