"""The commands on a user's own file: every row in file order, results keyed by the file's row
numbers, a label column found by its name, and detect's sparsity choices without extra flags.

The data is generated: low-rank rows with a few planted outliers at known rows, so a correct
`detect` must point at exactly those row numbers of the file.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

import sparseae
from sparseae.apps.features import encode
from sparseae.cli import main

N_ROWS, N_FEATURES = 240, 8
OUTLIERS = (17, 123, 201)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _table() -> tuple[np.ndarray, np.ndarray]:
    """Rows on a 3-D subspace of R^8 (an autoencoder learns them), three pushed far off it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_ROWS, 3)) @ rng.normal(size=(3, N_FEATURES))
    x[list(OUTLIERS)] += rng.choice([-1.0, 1.0], size=(len(OUTLIERS), N_FEATURES)) * 8
    return x, (x[:, 0] > 0).astype(int)


def write_csv(path: Path, header: list[str] | None, label: bool = True) -> np.ndarray:
    x, y = _table()
    lines = [",".join(header)] if header else []
    for row, t in zip(x, y, strict=True):
        cells = [f"{v:.5f}" for v in row] + ([str(t)] if label else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return np.round(x, 5)


HEADER = [f"f{i}" for i in range(N_FEATURES)]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("user") / "table.csv"
    return path, write_csv(path, [*HEADER, "label"])


@pytest.fixture(scope="module")
def saved(table: tuple[Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run") / "model"
    argv = ["train", "--dataset", str(table[0]), "--hidden", "16,4", "--epochs", "40"]
    assert main([*argv, "--batch-size", "16", "--no-progress", "--out", str(run)]) == 0
    return run


def read_scores(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_encode_defaults_to_every_row_in_file_order(table, saved, tmp_path, capsys):
    path, x = table
    out = tmp_path / "codes.npy"
    code, stdout, err = run_cli(
        capsys, "encode", str(saved), "--dataset", str(path), "--out", str(out)
    )
    assert code == 0, err
    assert "240 codes (all rows)" in stdout and "codes_rows.npy" in stdout
    codes = np.load(out)
    np.testing.assert_array_equal(np.load(tmp_path / "codes_rows.npy"), np.arange(N_ROWS))
    np.testing.assert_array_equal(np.load(tmp_path / "codes_labels.npy"), _table()[1])
    assert set(np.load(tmp_path / "codes_splits.npy")) == {"train", "val", "test"}
    model = sparseae.load(saved)
    np.testing.assert_allclose(codes, encode(model, x.astype(np.float32)), atol=1e-5)
    # an explicit split keeps the file's row numbers (not 0..n-1 of a shuffled split)
    code, _, err = run_cli(
        capsys, "encode", str(saved), "--dataset", str(path), "--split", "test", "--out", str(out)
    )
    assert code == 0, err
    rows = np.load(tmp_path / "codes_rows.npy")
    assert len(rows) == 24 and not np.array_equal(rows, np.arange(24))
    np.testing.assert_allclose(np.load(out), codes[rows], atol=1e-5)


def test_detect_all_rows_points_at_the_planted_outliers(table, saved, tmp_path, capsys):
    path, _ = table
    for extra in ((), ("--model", str(saved))):  # trained here, and a saved model
        out = tmp_path / "scores.csv"
        argv = ["detect", "--dataset", str(path), "--hidden", "16,4", "--epochs", "40"]
        code, stdout, err = run_cli(capsys, *argv, *extra, "--out", str(out))
        assert code == 0, err
        assert "of 240 rows (all)" in stdout
        rows = read_scores(out)
        assert set(rows[0]) == {"row", "split", "score", "is_anomaly", "label"}
        assert [int(r["row"]) for r in rows] == list(range(N_ROWS))  # file order
        assert [int(r["label"]) for r in rows] == _table()[1].tolist()
        top = sorted(rows, key=lambda r: -float(r["score"]))[: len(OUTLIERS)]
        assert sorted(int(r["row"]) for r in top) == list(OUTLIERS), extra
        assert all(r["is_anomaly"] == "1" for r in top)


def test_detect_split_test_keys_rows_by_file_row(table, tmp_path, capsys):
    path, _ = table
    out = tmp_path / "scores.csv"
    argv = ["detect", "--dataset", str(path), "--split", "test", "--epochs", "2"]
    code, stdout, err = run_cli(capsys, *argv, "--out", str(out))
    assert code == 0, err
    rows = read_scores(out)
    assert len(rows) == 24 and {r["split"] for r in rows} == {"test"}
    numbers = [int(r["row"]) for r in rows]
    assert numbers == sorted(numbers) and numbers != list(range(24))  # file rows, not 0..23
    data = sparseae.load_dataset(path, label_column="label")
    assert numbers == data.test.rows.tolist()


def test_label_column_found_by_name_with_a_notice(table, tmp_path, capsys):
    path, _ = table
    out = tmp_path / "c.npy"
    run = tmp_path / "run"
    argv = ["train", "--dataset", str(path), "--hidden", "4", "--epochs", "1", "--no-progress"]
    code, _, err = run_cli(capsys, *argv, "--out", str(run))
    assert code == 0
    notice = "using column 'label' as labels; pass --label-column none to keep it as a feature"
    assert notice in err
    assert sparseae.load(run).d_in == N_FEATURES  # the label is not a feature
    # --label-column none: every column a feature, no notice
    code, _, err = run_cli(capsys, *argv, "--label-column", "none", "--out", str(tmp_path / "r2"))
    assert code == 0 and "using column" not in err
    assert sparseae.load(tmp_path / "r2").d_in == N_FEATURES + 1
    # that model on the same file without the flag: the error names the fix
    code, _, err = run_cli(
        capsys, "encode", str(tmp_path / "r2"), "--dataset", str(path), "--out", str(out)
    )
    assert code == 2 and "pass --label-column none" in err


def test_label_column_ambiguous_or_absent(tmp_path, capsys):
    amb = tmp_path / "amb.csv"
    amb.write_text("a,label,target\n" + "".join(f"{i},{i % 2},{i % 3}\n" for i in range(40)))
    argv = ["detect", "--dataset", str(amb), "--epochs", "1", "--out", str(tmp_path / "s.csv")]
    code, _, err = run_cli(capsys, *argv)
    line = err.strip().splitlines()
    assert code == 2 and len(line) == 1 and "'label' and 'target'" in line[0]
    assert "--label-column" in line[0]
    code, _, err = run_cli(capsys, *argv, "--label-column", "target")
    assert code == 0, err
    bare = tmp_path / "bare.csv"
    write_csv(bare, None)  # no header: nothing to detect, every column a feature
    out = tmp_path / "s.csv"
    code, _, err = run_cli(
        capsys, "detect", "--dataset", str(bare), "--epochs", "1", "--out", str(out)
    )
    assert code == 0 and "using column" not in err
    assert set(read_scores(out)[0]) == {"row", "split", "score", "is_anomaly"}


def test_detect_topk_without_k_fits_the_code(table, tmp_path, capsys):
    from sparseae.cli import build_parser
    from sparseae.cli.detect import _build_model

    path, _ = table
    out = str(tmp_path / "s.csv")
    data = sparseae.load_dataset(path, label_column="auto")
    for sparsity, hidden, k in (
        ("topk", "64,16", 8),
        ("batchtopk", "64,4", 2),
        ("topk", "200", 32),
    ):
        args = build_parser().parse_args(
            ["detect", "--sparsity", sparsity, "--hidden", hidden, "--out", out]
        )
        assert _build_model(args, data).config.sparsity_params["k"] == k
    code, stdout, err = run_cli(
        capsys,
        "detect",
        "--dataset",
        str(path),
        "--sparsity",
        "topk",
        "--epochs",
        "2",
        "--out",
        out,
    )
    assert code == 0, err
    assert "flagged" in stdout
    code, _, err = run_cli(capsys, "detect", "--sparsity", "topk", "--k", "40", "--out", out)
    assert code == 2 and "--k 40 exceeds the code size 16" in err and "--hidden" in err
    code, stdout, _ = run_cli(capsys, "detect", "--help")
    flat = " ".join(stdout.split())
    assert "min(32, code size // 2)" in flat
    assert f"mechanism: {', '.join(sparseae.sparsity_names())} (default: l1" in flat
    assert "document 0" not in flat


def test_detect_kl_message_names_a_flag_detect_has(tmp_path, capsys):
    from sparseae.cli import build_parser

    out = str(tmp_path / "s.csv")
    base = ["detect", "--dataset", "digits", "--sparsity", "kl", "--epochs", "1", "--limit", "200"]
    code, _, err = run_cli(capsys, *base, "--code-activation", "relu", "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1
    flags = re.findall(r"--[a-z][a-z-]*", err)
    assert "--code-activation" in flags
    parser = build_parser()
    detect = parser._subparsers._group_actions[0].choices["detect"]  # noqa: SLF001
    known = {s for a in detect._actions for s in a.option_strings}  # noqa: SLF001
    assert set(flags) <= known, flags  # every flag the message suggests exists on detect
    fix = re.search(r"--code-activation (\w+)", err).group(1)
    code, stdout, err = run_cli(capsys, *base, "--code-activation", fix, "--out", out)
    assert code == 0, err
    code, _, err = run_cli(capsys, *base, "--out", out)  # the default code activation fits kl
    assert code == 0, err


def test_saved_model_refuses_training_flags_and_denoise_keeps_rows(table, saved, tmp_path, capsys):
    path, _ = table
    out = tmp_path / "s.csv"
    code, _, err = run_cli(
        capsys,
        "detect",
        "--dataset",
        str(path),
        "--model",
        str(saved),
        "--k",
        "3",
        "--out",
        str(out),
    )
    assert code == 2 and "--k" in err and "drop them" in err
    # denoise (rows in [0, 1]: minmax) with the saved model: every row in file order
    code, stdout, err = run_cli(
        capsys,
        "denoise",
        "--dataset",
        str(path),
        "--model",
        str(saved),
        "--out",
        str(tmp_path / "d"),
    )
    assert code == 0, err
    assert "on 240 all rows" in stdout
    np.testing.assert_array_equal(np.load(tmp_path / "d" / "denoised_rows.npy"), np.arange(N_ROWS))
    assert np.load(tmp_path / "d" / "denoised.npy").shape == (N_ROWS, N_FEATURES)
