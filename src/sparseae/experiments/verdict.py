"""The compare study's verdict: which method reconstructs best at a given sparsity, said in
words from the measured numbers, and which table cells are the best of their column.

Pure Python on the results' metric dicts (no PyTorch), so the rule can be tested on made-up
numbers. The rule, stated in the report by `rule_text`:

- sparsity is the number of latents with |h| > 0.1 per input (``l0_above_0.1``): sigmoid
  codes are never exactly 0, so counting exact non-zeros would call every sigmoid code dense;
- a method is *comparable* at the reference sparsity k (topk's k, Arora's target L0) when its
  L0 is at most ``MATCH_FACTOR`` * k (sparser is allowed: it only makes reconstruction harder);
- the best reconstruction is the lowest test MSE among comparable methods; a denser method's
  lower MSE is reported as what it is, a code that uses more latents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: how much denser than the reference k a method may be and still be compared on MSE
MATCH_FACTOR = 1.5
#: the sparsity measure used for matching (see the module docstring)
L0_KEY = "l0_above_0.1"

#: column -> "min" / "max": which end of the column is best (columns not listed: none)
BEST_END = {
    "l0": "min",
    "l0_above_0.1": "min",
    "frac_inactive": "max",
    "dead_latents": "min",
    "train_seconds": "min",
    "epoch_seconds": "min",
}


def rule_text(k: int) -> str:
    """The rule in one paragraph, for the report next to the table it explains."""
    return (
        f"How the verdict and the bold cells are decided: sparsity is counted as latents with "
        f"|h| > 0.1 per input. A method is compared on reconstruction when it uses at most "
        f"{MATCH_FACTOR:g} × k = {MATCH_FACTOR * k:g} such latents (k = {k}, top-k's k and "
        f"Arora's target L0); the test MSE marked best is the lowest among those methods. "
        f"Other columns mark their best value over all methods (lowest L0, dead latents and "
        f"time; highest fraction inactive), and nothing where every method ties."
    )


def comparable(rows: Sequence[Mapping[str, Any]], k: int) -> list[int]:
    """Indices of the rows sparse enough to be compared on MSE at reference sparsity k."""
    return [i for i, r in enumerate(rows) if r[L0_KEY] <= MATCH_FACTOR * k + 1e-9]


def best_cells(rows: Sequence[Mapping[str, Any]], k: int) -> dict[str, set[int]]:
    """column -> indices of the rows holding that column's best value (ties all marked)."""
    marks: dict[str, set[int]] = {}
    pool = comparable(rows, k)
    if pool:
        low = min(rows[i]["test_mse"] for i in pool)
        marks["test_mse"] = {i for i in pool if rows[i]["test_mse"] == low}
    for col, end in BEST_END.items():
        values = [r[col] for r in rows if col in r]
        if len(values) < len(rows) or len(set(values)) < 2:
            continue  # missing somewhere, or all tie: marking would say nothing
        target = min(values) if end == "min" else max(values)
        marks[col] = {i for i, r in enumerate(rows) if r[col] == target}
    return marks


def _at(r: Mapping[str, Any]) -> str:
    return f"test MSE {r['test_mse']:.4f} at L0 {r[L0_KEY]:.1f}"


def headline(
    rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str], k: int, hidden: int
) -> str:
    """The verdict paragraph: the best method at L0 ≈ k, the runners-up, and why a denser
    method's lower MSE is not a win (it is not sparse)."""
    pool = comparable(rows, k)
    limit = MATCH_FACTOR * k
    if not pool:
        best = min(rows, key=lambda r: r["test_mse"])
        return (
            f"No method run reaches L0 ≈ {k} of {hidden} latents (at most {limit:g} with "
            f"|h| > 0.1), so none is judged at that sparsity. The lowest error is the "
            f"{labels[best['method']]}'s, {_at(best)}."
        )
    ranked = sorted(pool, key=lambda i: rows[i]["test_mse"])
    best = rows[ranked[0]]
    text = [
        f"At L0 ≈ {k} of {hidden} latents (at most {limit:g} with |h| > 0.1), the "
        f"{labels[best['method']]} reconstructs best: {_at(best)}."
    ]
    if best.get("dead_latents"):
        text.append(f"It leaves {best['dead_latents']} of {hidden} latents dead on the test set.")
    if len(ranked) > 1:
        others = "; ".join(f"{labels[rows[i]['method']]}, {_at(rows[i])}" for i in ranked[1:])
        text.append(f"Also at this sparsity: {others}.")
    for r in rows:
        if r[L0_KEY] > limit and r["test_mse"] < best["test_mse"]:
            text.append(
                f"The {labels[r['method']]}'s lower test MSE ({r['test_mse']:.4f}) uses "
                f"{r[L0_KEY]:.0f} of {hidden} latents (|h| > 0.1; {r['l0']:.0f} non-zero): "
                "it is not sparse, so it is not a win at this sparsity."
            )
    return " ".join(text)


def pareto(points: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of the non-dominated points: no other point is at least as sparse and at
    least as accurate, and strictly better in one of the two."""
    keep = []
    for i, p in enumerate(points):
        dominated = any(
            q[L0_KEY] <= p[L0_KEY]
            and q["test_mse"] <= p["test_mse"]
            and (q[L0_KEY] < p[L0_KEY] or q["test_mse"] < p["test_mse"])
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            keep.append(i)
    return keep


def _knob(p: Mapping[str, Any]) -> str:
    return f" {p['knob']} {p['value']:g}" if p.get("knob") else ""


def frontier_text(points: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> str:
    """One sentence naming the runs on the error-vs-L0 frontier, sparsest first."""
    front = sorted(pareto(points), key=lambda i: points[i][L0_KEY])
    if not front:
        return ""
    parts = [
        f"{labels[p['method']]}{_knob(p)} (MSE {p['test_mse']:.4f} at L0 {p[L0_KEY]:.1f})"
        for p in (points[i] for i in front)
    ]
    return (
        f"Of the {len(points)} runs in the sweep, {len(front)} lie on the frontier, where no "
        f"other run is both sparser and more accurate; sparsest first: {', '.join(parts)}."
    )
