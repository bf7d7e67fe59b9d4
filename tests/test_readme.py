"""The README's examples run as printed: every Python block is a complete program, and every
shell command on the bundled digits runs, in order, in one scratch folder (later commands use
the run folders earlier ones wrote)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
SHELL_BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}


def _commands() -> list[list[str]]:
    """Shell lines that call sparseae on the bundled data (continuations joined, comments
    dropped); installs, make targets and commands on the user's own files are not run."""
    out = []
    for block in SHELL_BLOCKS:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("sparseae ") and ("--dataset digits" in line or "--help" in line):
                out.append(shlex.split(line))
    return out


def test_the_readme_has_examples_to_run():
    assert len(PYTHON_BLOCKS) >= 3 and len(_commands()) >= 8


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_every_python_block_is_a_complete_program(tmp_path, index):
    proc = subprocess.run(
        [sys.executable, "-c", PYTHON_BLOCKS[index]],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_every_shell_command_on_bundled_data_runs_as_printed(tmp_path):
    for argv in _commands():
        proc = subprocess.run(
            [sys.executable, "-m", "sparseae", *argv[1:]],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stderr[-3000:]}"
