"""Folders of the other SAE libraries, read and written as sparseae models.

`detect_format` tells from the files which library wrote a folder; `load_foreign` builds the
equivalent model (same outputs to float tolerance): a dictionary `SAE`, a `GatedSAE`, a
`MatryoshkaSAE` or a `Transcoder` (with its skip connection), or refuses, with the reason,
what sparseae cannot represent (per-sample input normalisation, other architectures);
`export` writes a sparseae model in another library's layout where that layout has the
architecture, and refuses with the reason otherwise. One module per library: `saelens`,
`sparsify`, `dictionary_learning`.

    export of      SAELens                     sparsify              dictionary_learning
    SAE            standard, topk, jumprelu    topk                  AutoEncoder[TopK], BatchTopKSAE
    GatedSAE       gated                       -                     GatedAutoEncoder
    MatryoshkaSAE  jumprelu (its threshold)    -                     MatryoshkaBatchTopKSAE
    Transcoder     [jumprelu_][skip_]transc.   topk, d_out == d_in   -
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparseae.errors import CheckpointError
from sparseae.interop import dictionary_learning, saelens, sparsify

FORMATS = {
    "saelens": saelens,
    "sparsify": sparsify,
    "dictionary-learning": dictionary_learning,
}


def detect_format(folder: str | Path) -> str | None:
    """'saelens', 'sparsify', 'dictionary-learning', or None (not a foreign SAE folder)."""
    folder = Path(folder)
    for name, module in FORMATS.items():
        if module.is_folder(folder):
            return name
    return None


def load_foreign(folder: str | Path, device: str = "cpu") -> Any:
    name = detect_format(folder)
    if name is None:
        raise CheckpointError(
            f"{folder} is neither a sparseae model nor a SAELens, sparsify or "
            "dictionary_learning folder: pass the folder a run wrote"
        )
    model = FORMATS[name].load(Path(folder))
    model.to(device)
    model.eval()
    return model


def export(model: Any, folder: str | Path, fmt: str) -> Path:
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt].save(model, Path(folder))
