"""``sparseae train-sae``: the same command as ``sparseae train --model sae``."""

from __future__ import annotations

from typing import Any

from sparseae.cli import train


def add_parser(sub: Any) -> None:
    train.add_parser(sub, name="train-sae", model="sae")
