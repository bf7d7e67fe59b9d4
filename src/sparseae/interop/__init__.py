"""Folders of the other SAE libraries, read and written as sparseae's dictionary `SAE`.

`detect_format` tells from the files which library wrote a folder; `load_foreign` builds the
equivalent `SAE` (same outputs to float tolerance) or refuses, with the reason, what the
dictionary model cannot represent (gated SAEs, transcoders, skip connections, per-sample
input normalisation); `export` writes a sparseae SAE in another library's layout. One module
per library: `saelens`, `sparsify`, `dictionary_learning`."""

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
