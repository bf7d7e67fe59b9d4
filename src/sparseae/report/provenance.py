"""Where a report came from: sparseae and torch versions, the command line, the seed, the
machine and the date, so a reader can tell which run a page shows and redo it."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def invoked_command(argv: Sequence[str] | None = None) -> str | None:
    """The shell command that started this process, when it was the ``sparseae`` command
    (``sparseae ...`` or ``python -m sparseae ...``); None when called from Python (a test,
    a notebook), where ``sys.argv`` says nothing about the report."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or Path(argv[0]).name not in ("sparseae", "__main__.py"):
        return None
    return shlex.join(["sparseae", *argv[1:]])


def provenance(
    *,
    command: str | None = None,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Footer facts, in display order: name -> text (all strings, JSON-ready)."""
    import torch

    from sparseae._version import __version__

    facts = {"sparseae": __version__, "torch": torch.__version__}
    if command:
        facts["command"] = command
    if settings:
        facts["settings"] = ", ".join(f"{k}={_show(v)}" for k, v in settings.items())
    if seed is not None:
        facts["seed"] = str(seed)
    facts["python"] = platform.python_version()
    facts["machine"] = (
        f"{platform.platform()} ({platform.machine()}), {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads"
    )
    facts["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return facts


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
