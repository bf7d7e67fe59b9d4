"""Small helpers shared by the benchmark scripts (results folder, markdown tables, Keras runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def md_table(
    rows: list[dict[str, Any]], columns: list[str], headers: list[str] | None = None
) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    head = "| " + " | ".join(headers or columns) + " |"
    sep = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_results(name: str, text: str, data: Any, quick: bool) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = name + ("_quick" if quick else "")
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=2, default=float) + "\n")


def keras_runs(model: str, epochs: int = 10) -> list[dict[str, Any]]:
    """Runs of document 003's Keras code on this machine, as ``keras_fashion.py`` appends
    them to ``results/keras_fashion.jsonl`` (empty where TensorFlow was never run)."""
    path = RESULTS / "keras_fashion.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["model"] == model and r["epochs"] == epochs]


def keras_val_cell(keras: list[dict]) -> str:
    """Keras' final val loss over its runs here, each distinct value once with its count
    (seeded Keras runs repeat exactly)."""
    counts: dict[str, int] = {}
    for r in keras:
        key = f"{r['val_loss'][-1]:.4f}"
        counts[key] = counts.get(key, 0) + 1
    cells = [v if n == 1 else f"{v} (x{n} runs)" for v, n in counts.items()]
    return ", ".join(cells) or "-"


def verdict(values: list[float], doc: float) -> str:
    """Whether our validation BCEs are at or below the document's, compared at its printed
    precision (4 decimals): "yes", "NO" or how many seeds, as "2/5 seeds"."""
    ok = [round(v, 4) <= doc for v in values]
    if all(ok):
        return "yes"
    return "NO" if not any(ok) else f"{sum(ok)}/{len(ok)} seeds"
