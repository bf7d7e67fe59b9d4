"""A run folder owned by one job at a time.

`RunFolder` checks the output location before any training starts (a folder that can be
created and written, not a file), locks it against a second writer (a lock file holding the
writer's pid; a lock left by a killed process is recognised as stale and taken over), refuses
to silently replace a finished or interrupted run, refuses ``--resume`` where there is
nothing to resume, and removes temporary files that a killed writer left behind.

Locks are re-entrant within a process (the CLI holds the folder for the whole job, its
trainer opens it again), and only one rank of a data-parallel run takes the lock; every rank
applies the same read-only checks, so all of them stop together."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

from sparseae.atomic import TMP_SUFFIX
from sparseae.errors import ConfigError

LOCK_FILE = ".sparseae.lock"
RUN_FILES = ("trainer_state.safetensors", "config.json", "model.safetensors", "history.jsonl")
_HELD: dict[Path, int] = {}  # folders this process holds -> how many times


class RunFolder:
    def __init__(
        self,
        path: str | Path,
        *,
        resume: bool | str = False,
        overwrite: bool = False,
        lock: bool = True,
    ) -> None:
        self.path = Path(path)
        self.resume, self.overwrite, self.lock = resume, overwrite, lock
        self._held = False

    def __enter__(self) -> RunFolder:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- opening ------------------------------------------------------------------------------
    def open(self) -> None:
        self._make_writable()
        key = self.path.resolve()
        if self.lock:
            if _HELD.get(key, 0) == 0:
                _acquire(self.path)
            _HELD[key] = _HELD.get(key, 0) + 1
            self._held = True
        self._apply_policy()
        if self.lock:
            remove_stale_temporaries(self.path)

    def _make_writable(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise ConfigError(f"output {p} is a file, not a folder: choose another --out")
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / f".sparseae-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"cannot write to {p} ({exc.strerror or exc}): choose another --out"
            ) from None

    def _apply_policy(self) -> None:
        state = self.path / RUN_FILES[0]
        existing = [f for f in RUN_FILES if (self.path / f).exists()]
        if self.resume is True and not state.is_file():
            raise ConfigError(
                f"nothing to resume in {self.path} (no {RUN_FILES[0]}): drop --resume to "
                "start a fresh run there, or check the folder name"
            )
        if self.resume or not existing:
            return
        if not self.overwrite:
            what = (
                "an interrupted run"
                if state.is_file() and not (self.path / "config.json").is_file()
                else "a run"
            )
            raise ConfigError(
                f"{self.path} already holds {what} ({', '.join(existing)}): --resume to "
                "continue it, --overwrite to replace it, or choose another --out"
            )
        for name in existing:
            (self.path / name).unlink()

    # -- closing ------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._held:
            return
        self._held = False
        key = self.path.resolve()
        _HELD[key] -= 1
        if _HELD[key] == 0:
            del _HELD[key]
            (self.path / LOCK_FILE).unlink(missing_ok=True)


def _acquire(folder: Path) -> None:
    lock = folder / LOCK_FILE
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(lock)
            if owner is not None:
                raise ConfigError(
                    f"{folder} is in use by another sparseae run (pid {owner}): wait for it, "
                    "or choose another --out"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its writer is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        return
    raise ConfigError(f"could not lock {folder}: another run keeps taking it")


def _owner(lock: Path) -> int | None:
    """The pid of a live process holding ``lock`` on this host, else None (stale)."""
    try:
        pid_text, host = lock.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return pid  # another machine's process: assume alive
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return pid if exc.errno == errno.EPERM else None
    return pid


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files of interrupted atomic writes (``.NAME.XXXX.tmp``)."""
    removed = 0
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed
