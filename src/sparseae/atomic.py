"""Atomic file writes: every file goes to a temporary name in its folder, is flushed and
renamed over the old one, so a crash never leaves a half-written file behind."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sparseae.errors import CheckpointError, CheckpointWriteError

TMP_SUFFIX = ".tmp"


def _umask_mode() -> int:
    """The mode a plainly created file would get (mkstemp's files are private, 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_in(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    return tmp


def _commit(tmp: str, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, path)


def _failed(path: Path, exc: OSError) -> CheckpointWriteError:
    return CheckpointWriteError(
        exc.errno,
        f"could not write {path} ({exc.strerror or exc}): free disk space or choose another "
        "--out; the previous version of the file is intact",
    )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    try:
        tmp = _temp_in(path)
    except OSError as exc:
        raise _failed(path, exc) from None
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        _commit(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _failed(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    try:
        tmp = _temp_in(path)
    except OSError as exc:
        raise _failed(path, exc) from None
    try:
        clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(clean, tmp, metadata=metadata)
        _commit(tmp, path)
    except (OSError, SafetensorError) as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _failed(path, exc) from None
        raise _failed(path, OSError(errno.EIO, str(exc))) from None
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
