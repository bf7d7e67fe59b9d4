"""Saving and loading models as folders of safetensors + JSON.

Nothing here unpickles: weights come from safetensors, everything else from JSON, and the
class to rebuild is looked up in `MODEL_KINDS` by the name written in config.json (every kind
is registered when `sparseae` is imported), so a model folder from anywhere is safe to load.
Every file is written atomically (`sparseae.atomic`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparseae.atomic import atomic_save_tensors, atomic_write_text, load_tensors
from sparseae.errors import CheckpointError, ConfigError
from sparseae.models import MODEL_KINDS

FORMAT = "sparseae"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.jsonl"


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
    from sparseae._version import __version__

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
            f"{folder} has no {CONFIG_FILE}: pass the folder a sparseae run wrote (e.g. runs/kl), "
            "or a SAELens, sparsify or dictionary_learning SAE folder"
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
    """Rebuild a saved model exactly (same outputs bit for bit on the same device).

    The folder is untrusted: config.json is validated field by field, and the model it
    describes is first built on PyTorch's meta device (no memory) and compared with the
    safetensors header (names, shapes, dtypes) before anything is allocated, so a folder can
    never make the loader use much more memory than its own weights file. Non-finite
    weights are refused."""
    folder = Path(folder)
    if folder.is_dir() and not _is_sparseae_folder(folder):
        from sparseae.interop import detect_format, load_foreign

        if detect_format(folder) is not None:  # a SAELens / sparsify / dictionary_learning SAE
            return load_foreign(folder, str(device))
    config = read_config(folder)
    build, source = _builder(config, folder)
    weights = folder / WEIGHTS_FILE
    with torch.device("meta"):
        skeleton = build()
    _check_header(skeleton, weights)
    model = build()
    state = load_tensors(weights, device)
    _fill_missing_transform(model, state)
    bad = [name for name, t in state.items() if t.is_floating_point() and not t.isfinite().all()]
    if bad:
        raise CheckpointError(
            f"{weights}: {', '.join(bad[:3])} hold NaN or inf values: the run that wrote it "
            "diverged; load an earlier checkpoint or retrain"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{folder}: weights do not match config.json ({first})") from None
    model.to(device)
    model.eval()
    return model


def _is_sparseae_folder(folder: Path) -> bool:
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


def _builder(config: dict[str, Any], folder: Path) -> tuple[Any, str]:
    """A function that builds the model config.json describes, with its errors typed."""
    source = str(folder / CONFIG_FILE)
    kind = config.get("kind")
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise CheckpointError(
            f"{source}: unknown model kind {kind!r} (known: {', '.join(MODEL_KINDS.names())})"
        )
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{source}: 'model' must be an object of the model's settings")

    def build() -> nn.Module:
        try:
            return MODEL_KINDS.get(kind)(config["model"], source)
        except ConfigError as exc:
            message = str(exc)
            raise CheckpointError(
                message if message.startswith(source) else f"{source}: {message}"
            ) from None

    return build, source


_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.bool: "BOOL",
}


def _check_header(skeleton: nn.Module, weights: Path) -> None:
    """The weights file holds exactly the tensors the config describes (optional ones,
    the input transform of older folders, may be missing)."""
    from safetensors import SafetensorError, safe_open

    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: the folder is not a complete sparseae model")
    try:
        with safe_open(str(weights), framework="pt") as fh:
            header = {k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype())
                      for k in fh.keys()}  # fmt: skip
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({exc})") from None
    expected = {k: (tuple(v.shape), _DTYPES.get(v.dtype)) for k, v in skeleton.state_dict().items()}
    missing = [k for k in expected if k not in header and not k.startswith("input_transform.")]
    extra = [k for k in header if k not in expected and not _legacy_name(k)]
    wrong = [k for k in expected if k in header and header[k] != expected[k]]
    if missing or extra or wrong:
        parts = [f"missing {', '.join(missing[:3])}"] if missing else []
        parts += [f"unexpected {', '.join(extra[:3])}"] if extra else []
        parts += [
            f"{k} is {list(header[k][0])} {header[k][1]} where config.json implies "
            f"{list(expected[k][0])} {expected[k][1]}"
            for k in wrong[:2]
        ]
        raise CheckpointError(f"{weights} does not match config.json: {'; '.join(parts)}")


def _legacy_name(name: str) -> bool:
    return name == "since_fired"  # the SAE's dead-latent counter, now the trainer's


def _fill_missing_transform(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Folders written before models carried their input transform load with the identity."""
    for name, value in model.state_dict().items():
        if name.startswith("input_transform.") and name not in state:
            state[name] = value.to(next(iter(state.values())).device) if state else value
