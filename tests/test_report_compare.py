"""The compare report's words and layout from made-up or tiny results: the verdict names the
method the numbers support, titles and captions follow what was run, and non-image data get
heatmaps and bar plots instead of 1-pixel strips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib import image as mpimg

from sparseae.cli import main
from sparseae.experiments import verdict
from sparseae.experiments.compare_report import report_title
from sparseae.experiments.settings import LABELS, CompareSettings, sweep_values
from sparseae.report.html import Report
from sparseae.report.provenance import invoked_command, provenance


def _row(method: str, mse: float, l0: float, dead: int = 0, exact: float | None = None) -> dict:
    return {
        "method": method,
        "test_mse": mse,
        "l0": l0 if exact is None else exact,
        "l0_above_0.1": l0,
        "frac_inactive": 1 - l0 / 100,
        "dead_latents": dead,
        "train_seconds": 1.0,
    }


ROWS = [
    _row("plain", 0.0036, 93.0, exact=100.0),  # lowest MSE, but dense
    _row("kl", 0.0228, 11.5, exact=100.0),
    _row("arora", 0.0402, 3.1),
    _row("topk", 0.0123, 10.0, dead=35),  # best at matched sparsity
    _row("l2", 0.0222, 100.0),
]


def test_verdict_names_the_best_method_at_matched_sparsity_not_the_dense_one():
    text = verdict.headline(ROWS, LABELS, k=10, hidden=100)
    first = text.split(". ")[0]
    assert first.startswith("At L0 ≈ 10 of 100 latents")
    assert f"the {LABELS['topk']} reconstructs best: test MSE 0.0123 at L0 10.0" in text
    assert "35 of 100 latents dead" in text
    assert f"The {LABELS['plain']}'s lower test MSE (0.0036) uses 93 of 100 latents" in text
    assert "not sparse" in text
    assert LABELS["l2"] not in text  # denser and worse: nothing to explain


def test_verdict_changes_with_the_numbers():
    rows = [dict(r) for r in ROWS]
    rows[1]["test_mse"] = 0.005  # now KL is best at the matched sparsity
    text = verdict.headline(rows, LABELS, k=10, hidden=100)
    assert f"the {LABELS['kl']} reconstructs best: test MSE 0.0050 at L0 11.5" in text
    none = verdict.headline([ROWS[0], ROWS[4]], LABELS, k=10, hidden=100)
    assert none.startswith("No method run reaches L0 ≈ 10 of 100")
    assert LABELS["plain"] in none


def test_best_cells_judge_mse_among_comparable_methods_only():
    marks = verdict.best_cells(ROWS, k=10)
    assert marks["test_mse"] == {3}  # topk, not plain (row 0)
    assert marks["l0_above_0.1"] == {2} and marks["frac_inactive"] == {2}
    assert marks["dead_latents"] == {0, 1, 2, 4}
    assert "train_seconds" not in marks  # every method ties: nothing marked
    html = Report("t").table(ROWS, ["method", "test_mse"], marks=marks).render()
    assert html.count("class='best'") == 1 and "<td class='best'>0.0123</td>" in html
    assert "1.5 × k = 15" in verdict.rule_text(10)


def test_frontier_keeps_only_undominated_runs():
    pts = [
        {**_row("topk", 0.02, 5.0), "knob": "k", "value": 5},
        {**_row("topk", 0.01, 10.0), "knob": "k", "value": 10},
        {**_row("kl", 0.03, 11.0), "knob": "rho", "value": 0.05},  # dominated by topk k=10
        {**_row("plain", 0.004, 93.0), "knob": None, "value": None},
    ]
    assert verdict.pareto(pts) == [0, 1, 3]
    text = verdict.frontier_text(pts, LABELS)
    assert "3 lie on the frontier" in text and LABELS["kl"] not in text
    assert text.index("k 5") < text.index("k 10") < text.index(LABELS["plain"])


def test_sweep_grid_brackets_each_knob():
    s = CompareSettings(k=10, hidden=100, rho=0.05, weight_decay=1e-4)
    assert sweep_values("topk", s) == [5, 10, 20]
    assert sweep_values("arora", CompareSettings(k=1, hidden=2)) == [1, 2]
    assert sweep_values("kl", s) == pytest.approx([0.025, 0.05, 0.1])
    assert sweep_values("l2", s) == pytest.approx([1e-5, 1e-4, 1e-3])
    assert sweep_values("plain", s) == []


def test_title_follows_methods_and_dataset():
    assert report_title(["topk", "kl"], "sparse.npy") == (
        "Sparse coding on sparse.npy: top-k and KL compared"
    )
    assert report_title(["arora"], "digits") == "Neural sparse coding (Arora et al. 2015) on digits"
    assert "Five" not in report_title(["plain", "l2", "kl", "arora", "topk"], "digits")


def test_provenance_footer_names_version_command_seed_machine_date():
    facts = provenance(command="sparseae compare --seed 3", seed=3, settings={"k": 5})
    html = Report("t", provenance=facts).render()
    for key in ("sparseae", "torch", "command", "settings", "seed", "python", "machine", "date"):
        assert f"<dt>{key}</dt>" in html
    assert "<dd>sparseae compare --seed 3</dd>" in html and "CPUs" in facts["machine"]
    assert invoked_command(["/usr/bin/sparseae", "compare", "--out", "a b"]) == (
        "sparseae compare --out 'a b'"
    )
    assert invoked_command(["pytest", "-q"]) is None


def test_non_image_data_get_heatmaps_bar_plots_and_true_counts(tmp_path):
    rng = np.random.default_rng(0)
    x = ((rng.random((400, 20)) < 0.2) * rng.random((400, 20))).astype(np.float32)
    np.save(tmp_path / "sparse.npy", x)
    out = tmp_path / "rep"
    argv = ["compare", "--dataset", str(tmp_path / "sparse.npy"), "--methods", "plain,topk"]
    argv += ["--n-latents", "24", "--k", "4", "--epochs", "2", "--no-sweep", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "<h1>Sparse coding on sparse.npy: plain AE and top-k compared</h1>" in html
    assert "All 24 filters (dictionary atoms), one row per atom" in html
    assert "first 64" not in html
    assert "10 test inputs (grey bars) and their reconstructions" in html
    assert "One point per method" in html  # --no-sweep: no curve claimed
    summary = json.loads((out / "results.json").read_text())
    assert summary["dataset"] == "sparse.npy" and summary["settings"]["sweep"] is False
    assert summary["sweep"] == []  # --no-sweep
    for name in ("filters_topk", "reconstructions_topk"):
        img = mpimg.imread(out / f"{name}.png")
        assert img.shape[0] > 150 and img.shape[1] > 600  # not a 1-pixel strip
        assert img[..., :3].std() > 0.05
