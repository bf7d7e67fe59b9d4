"""Latent dashboards: for chosen latents of a dictionary, the inputs that excite them most
(image thumbnails, or text snippets with the strongest token highlighted) and the
distribution of their activations.

Everything is a self-contained HTML fragment (figures are base64 PNG data URIs made by
`sparseae.report.html.png_data_uri`, no CDN, no JavaScript) so cards can be dropped into any
report; `write_page` wraps them into one standalone page (a `Report`). Codes are computed
batch by batch and only the chosen latents' columns are kept, so a dashboard over millions of
activation rows needs memory for a few columns only.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparseae.atomic import atomic_write_text
from sparseae.data.shards import row_batches
from sparseae.report.html import Report, png_data_uri
from sparseae.training.evaluate import map_batches


# ---------------------------------------------------------------------------------------------
# codes
def encode_batches(model: nn.Module, x: Any, batch_size: int = 4096) -> Iterator[Tensor]:
    """The model's codes (eval mode, on its device, back on the CPU) of ``x`` (array, tensor
    or `ShardDataset`), batch by batch: rows are read one batch at a time, so a shard folder
    is never loaded whole."""
    for xb in row_batches(x, batch_size):
        yield map_batches(model, xb, model.encode, batch_size=batch_size)


def firing_frequency(model: nn.Module, x: Any, batch_size: int = 4096) -> np.ndarray:
    """Fraction of rows on which each latent is non-zero."""
    counts, n = None, 0
    for h in encode_batches(model, x, batch_size):
        c = (h != 0).sum(0)
        counts = c if counts is None else counts + c
        n += h.shape[0]
    assert counts is not None
    return (counts.double() / n).numpy()


def latent_columns(
    model: nn.Module, x: Any, latents: Sequence[int], batch_size: int = 4096
) -> np.ndarray:
    """(rows, len(latents)) activations of the chosen latents only."""
    idx = torch.as_tensor(list(latents), dtype=torch.long)
    cols = [h.index_select(1, idx).numpy() for h in encode_batches(model, x, batch_size)]
    return np.concatenate(cols)


def choose_latents(
    freq: np.ndarray, n_frequent: int = 4, n_random: int = 4, seed: int = 0
) -> list[int]:
    """The most frequently firing latents, then random live (ever-firing) ones: the top of
    the list shows what dominates, the random ones what a typical latent looks like."""
    order = np.argsort(-freq, kind="stable")
    top = [int(i) for i in order[:n_frequent] if freq[i] > 0]
    live = np.setdiff1d(np.nonzero(freq > 0)[0], top)
    rng = np.random.default_rng(seed)
    pick = rng.choice(live, size=min(n_random, live.size), replace=False) if live.size else []
    return top + sorted(int(i) for i in pick)


def top_rows(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest activations, largest first (only rows where it fires)."""
    k = min(k, int((values > 0).sum()))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.argsort(-values[part], kind="stable")]


# ---------------------------------------------------------------------------------------------
# figures
def histogram_uri(values: np.ndarray, title: str = "") -> str:
    """Histogram of a latent's non-zero activations (log counts), with how often it is zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 1.7))
    active = values[values != 0]
    if active.size:
        ax.hist(active, bins=40, color="#3b6ea8", log=True)
    ax.set_title(
        title or f"non-zero on {active.size / max(1, values.size):.2%} of rows", fontsize=8
    )
    ax.tick_params(labelsize=7)
    ax.set_xlabel("activation", fontsize=7)
    return png_data_uri(fig, dpi=80, close=True)


def image_grid(images: np.ndarray, shape: tuple[int, int], cols: int = 8, scale: int = 2) -> str:
    """Thumbnails tiled into one PNG (each image min-max scaled on its own)."""
    h, w = shape
    imgs = images.reshape(-1, h, w).astype(np.float32)
    n = imgs.shape[0]
    rows = max(1, -(-n // cols))
    grid = np.ones((rows * (h + 1), cols * (w + 1)), dtype=np.float32)
    for i, im in enumerate(imgs):
        lo, hi = float(im.min()), float(im.max())
        im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
        r, c = divmod(i, cols)
        grid[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = 1.0 - im
    grid = np.kron(grid, np.ones((scale, scale), dtype=np.float32))
    return png_data_uri(grid)


# ---------------------------------------------------------------------------------------------
# cards
def _card(latent: int, freq: float, body: str, hist: str) -> str:
    return (
        f'<div class="card"><h3>latent {latent} <small>fires on {freq:.2%} of rows</small></h3>'
        f'<div class="row"><div>{body}</div><img src="{hist}" alt="histogram"></div></div>\n'
    )


def image_latent_card(
    latent: int,
    values: np.ndarray,
    images: np.ndarray,
    image_shape: tuple[int, int],
    *,
    top_k: int = 16,
    decoder_image: np.ndarray | None = None,
) -> str:
    """``values``: this latent's activation on every row; ``images``: the input of each row."""
    rows = top_rows(values, top_k)
    parts = []
    if decoder_image is not None:
        parts.append(
            f'<figure><img src="{image_grid(decoder_image[None], image_shape, 1, 3)}">'
            "<figcaption>decoder direction</figcaption></figure>"
        )
    if rows.size:
        acts = ", ".join(f"{values[r]:.2f}" for r in rows[:4])
        parts.append(
            f'<figure><img src="{image_grid(images[rows], image_shape)}">'
            f"<figcaption>top {rows.size} inputs (activations {acts}, ...)</figcaption></figure>"
        )
    freq = float((values != 0).mean())
    return _card(latent, freq, "".join(parts), histogram_uri(values))


def _join_tokens(tokens: Sequence[str], weights: np.ndarray, strongest: int) -> str:
    out = []
    for i, tok in enumerate(tokens):
        if not tok:  # special tokens have no text (and no activation row)
            continue
        text = tok[2:] if tok.startswith("##") else (" " + tok if out else tok)
        esc = html.escape(text)
        if i == strongest:
            out.append(f'<mark class="max">{esc}</mark>')
        elif weights[i] > 0:
            alpha = 0.15 + 0.6 * float(weights[i])
            out.append(f'<mark style="background:rgba(255,170,0,{alpha:.2f})">{esc}</mark>')
        else:
            out.append(esc)
    return "".join(out)


def text_latent_card(
    latent: int,
    values: np.ndarray,
    source: np.ndarray,
    position: np.ndarray,
    tokens: Sequence[Sequence[str]],
    *,
    top_k: int = 8,
    window: int = 12,
) -> str:
    """Snippets whose tokens excite the latent most; the strongest token is boxed and other
    tokens of the snippet are shaded by their own activation of the same latent."""
    rows = top_rows(values, top_k * 4)
    vmax = float(values.max()) if values.size else 1.0
    items, used = [], set()
    order = np.argsort(source, kind="stable")
    sorted_src = source[order]
    for r in rows:
        src = int(source[r])
        if src in used:  # one line per snippet
            continue
        used.add(src)
        lo, hi = np.searchsorted(sorted_src, [src, src + 1])
        rows_of_src = order[lo:hi]
        toks = tokens[src]
        weights = np.zeros(len(toks))
        for rr in rows_of_src:
            if position[rr] < len(toks):
                weights[position[rr]] = max(0.0, values[rr]) / vmax
        p = int(position[r])
        a, b = max(0, p - window), min(len(toks), p + window + 1)
        text = _join_tokens(toks[a:b], weights[a:b], p - a)
        items.append(f"<li><code>{values[r]:.2f}</code> {'…' if a else ''}{text}</li>")
        if len(items) == top_k:
            break
    freq = float((values != 0).mean())
    return _card(latent, freq, f"<ol>{''.join(items)}</ol>", histogram_uri(values))


# ---------------------------------------------------------------------------------------------
# page
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.8em 0}
.card h3{margin:.2em 0} .card small{color:#666;font-weight:normal}
.row{display:flex;gap:1.5em;align-items:flex-start;flex-wrap:wrap}
figure{display:inline-block;margin:0 1em 0 0} figcaption{font-size:.8em;color:#555}
ol{font-size:.9em;line-height:1.6;margin:0;padding-left:1.4em;max-width:720px}
mark.max{background:#ff9800;outline:2px solid #c00;font-weight:bold}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
"""


def page(title: str, sections: Sequence[str], intro: str = "") -> str:
    """A standalone HTML page from fragments (``intro`` is trusted HTML), through the same
    `Report` as every other report, without its check script: a dashboard carries no
    JavaScript."""
    report = Report(title, style=STYLE, check_script=False)
    return report.raw_html(intro).raw_html("\n".join(sections)).render() + "\n"


def write_page(path: str | Path, title: str, sections: Sequence[str], intro: str = "") -> Path:
    path = Path(path)
    atomic_write_text(path, page(title, sections, intro))
    return path


EVAL_FIELDS = (
    ("rows", "rows evaluated", "d"),
    ("fvu", "FVU (unexplained variance)", ".4f"),
    ("normalized_mse", "normalised MSE (÷ Σ‖x‖²)", ".4f"),
    ("cosine", "cosine(x, x̂)", ".4f"),
    ("l0", "L0", ".1f"),
    ("dead_latents", "dead latents", "d"),
    ("dense_latents", "dense latents (>10%)", "d"),
    ("recovered_vs_mean", "loss recovered vs mean ablation", ".3f"),
    ("recovered_vs_zero", "loss recovered vs zero ablation", ".3f"),
)


def evaluation_panel(result: dict[str, Any], title: str = "evaluation") -> str:
    """A section with `sparseae.apps.sae_eval` numbers (those present in ``result``) and the
    log10 firing-frequency histogram, for `write_page`."""
    import tempfile

    from sparseae.report.figures import firing_frequency_histogram

    rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(label)}</td>"
        f"<td>{format(result[key], fmt) if fmt != 'd' else int(result[key])}</td></tr>"
        for key, label, fmt in EVAL_FIELDS
        if key in result
    )
    figure = ""
    if "firing" in result:
        with tempfile.TemporaryDirectory() as tmp:
            path, _ = firing_frequency_histogram(result["firing"], Path(tmp) / "f.png")
            figure = f"<img alt='firing frequency histogram' src='{png_data_uri(path)}'>"
    return (
        f"<section class='eval'><h2>{html.escape(title)}</h2><table>{rows}</table>"
        f"{figure}</section>"
    )
