"""Saving and loading models as folders of safetensors + JSON.

Nothing here unpickles: weights come from safetensors, everything else from JSON, and the
class to rebuild is looked up in a registry by the name written in config.json, so a model
folder from anywhere is safe to load. Every file is written to a temporary name, flushed
and renamed over the old one, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sparseae.errors import CheckpointError

FORMAT = "sparseae"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.jsonl"

# kind name -> function(config dict) -> module; filled by `register_kind`
_KINDS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


def register_kind(name: str, build: Callable[[dict[str, Any]], nn.Module]) -> None:
    """Make a model class loadable: ``build`` gets the saved ``model`` config dict."""
    _KINDS[name] = build


def _umask_mode() -> int:
    """The mode a plainly created file would get (mkstemp's files are private, 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(clean, tmp, metadata=metadata)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the folder is not a complete sparseae model")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None


def model_kind(model: nn.Module) -> str:
    kind = getattr(model, "checkpoint_kind", None) or type(model).__name__
    return str(kind)


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise CheckpointError(f"{type(model).__name__} has no config to save")
    return config.to_dict()


def save(
    model: nn.Module,
    folder: str | Path,
    *,
    history: Iterable[dict[str, Any]] | None = None,
    train_config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``history.jsonl``) into folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    from sparseae import __version__

    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sparseae_version": __version__,
        "kind": model_kind(model),
        "model": model_config_dict(model),
    }
    if train_config is not None:
        config["train"] = train_config
    if extra:
        config["extra"] = extra
    # weights first, config last: a folder whose config.json exists has matching weights
    atomic_save_tensors(folder / WEIGHTS_FILE, dict(model.state_dict()))
    if history is not None:
        lines = "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in history)
        atomic_write_text(folder / HISTORY_FILE, lines)
    atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True))
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(f"model folder {folder} does not exist")
    path = folder / CONFIG_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise CheckpointError(
            f"{folder} has no {CONFIG_FILE}: pass the folder a sparseae run wrote (e.g. runs/kl)"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a sparseae model config (no format: sparseae)")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer sparseae (format {config['format_version']}): upgrade"
        )
    return config


def read_history(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load(folder: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved model exactly (same outputs bit for bit on the same device)."""
    folder = Path(folder)
    config = read_config(folder)
    kind = config.get("kind")
    if kind not in _KINDS:
        raise CheckpointError(
            f"{folder}: unknown model kind {kind!r} (known: {', '.join(sorted(_KINDS))})"
        )
    model = _KINDS[kind](config["model"])
    state = load_tensors(folder / WEIGHTS_FILE, device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{folder}: weights do not match config.json ({first})") from None
    model.to(device)
    model.eval()
    return model
