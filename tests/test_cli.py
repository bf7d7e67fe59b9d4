import json
import subprocess
import sys

import pytest

import sparseae
from sparseae.cli import main


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse exits for usage errors and --help
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_on_digits_writes_a_loadable_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--hidden",
        "32,48",
        "--sparsity",
        "topk",
        "--k",
        "6",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--no-progress",
        "--out",
        str(out),
    )
    assert code == 0
    assert "epoch   3/3" in stdout and "saved to" in stdout
    assert "test" in stdout and "l0" in stdout
    for name in ("config.json", "model.safetensors", "history.jsonl"):
        assert (out / name).is_file(), name
    model = sparseae.load(out)
    assert model.config.sparsity == "topk" and model.n_latents == 48
    config = json.loads((out / "config.json").read_text())
    assert config["extra"]["dataset"] == "digits"
    assert config["extra"]["test"]["l0"] == pytest.approx(6.0)
    assert len(sparseae.read_history(out)) == 3


def test_keras_penalty_scale_divides_the_kl_weight_by_batch_size(tmp_path, capsys):
    out = tmp_path / "kl"
    code, _, _ = run_cli(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--hidden",
        "16,40",
        "--sparsity",
        "kl",
        "--rho",
        "0.1",
        "--beta",
        "0.05",
        "--penalty-scale",
        "keras",
        "--loss",
        "bce",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--no-progress",
        "--out",
        str(out),
    )
    assert code == 0
    params = sparseae.load(out).config.sparsity_params
    assert params["weight"] == pytest.approx(0.05 / 32)
    assert sparseae.load(out).config.code_activation == "sigmoid"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--epochs", "-3"], "argument --epochs: expected a positive integer, got '-3'"),
        (["--hidden", "10,x"], "argument --hidden: expected comma-separated positive integers"),
        (["--sparsity", "nope"], "argument --sparsity: invalid choice: 'nope'"),
        (
            ["--sparsity", "topk", "--k", "99", "--hidden", "16,8"],
            "topk needs 1 <= k <= n_latents (8), got k=99",
        ),
        (["--sparsity", "kl", "--rho", "1.5"], "rho must lie strictly inside (0, 1)"),
        (["--sparsity", "kl", "--code-activation", "relu"], "needs a code in (0, 1)"),
        (["--sparsity", "l1", "--k", "3"], "--k does not apply to --sparsity l1"),
        (["--dataset", "no-such-set"], "no-such-set"),
    ],
)
def test_bad_option_values_exit_2_with_one_clear_line(tmp_path, capsys, argv, fragment):
    code, stdout, stderr = run_cli(
        capsys, "train", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r"), *argv
    )
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert fragment in lines[0]
    assert "Traceback" not in stderr


def test_help_explains_every_option(capsys):
    code, stdout, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    for flag in (
        "--dataset",
        "--data-dir",
        "--hidden",
        "--sparsity",
        "--rho",
        "--k",
        "--alpha",
        "--loss",
        "--epochs",
        "--batch-size",
        "--out",
        "--resume",
        "--penalty-scale",
        "--corruption",
        "--weight-decay",
        "--seed",
        "--device",
    ):
        assert flag in stdout, flag
    code, stdout, _ = run_cli(capsys, "--help")
    assert code == 0 and "train" in stdout


def test_resume_flag_continues_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    base = [
        "train",
        "--dataset",
        "digits",
        "--hidden",
        "16,16",
        "--batch-size",
        "128",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert run_cli(capsys, *base, "--epochs", "2")[0] == 0
    code, _, err = run_cli(capsys, *base, "--epochs", "3", "--resume")
    assert code == 2 and "epochs: 2 -> 3" in err and "--allow-change epochs" in err
    code, stdout, _ = run_cli(
        capsys, *base, "--epochs", "3", "--resume", "--allow-change", "epochs"
    )
    assert code == 0
    assert "epoch   3/3" in stdout and "epoch   1/3" not in stdout
    assert len(sparseae.read_history(out)) == 3


def test_module_entry_point_runs_as_a_real_process(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparseae",
            "train",
            "--dataset",
            "digits",
            "--hidden",
            "8,4",
            "--epochs",
            "1",
            "--no-progress",
            "--k",
            "2",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sparseae train: error: --k does not apply to --sparsity none"
    ]
    assert "Traceback" not in proc.stderr


def test_autograd_flag_trains_through_autograd_to_the_same_result(tmp_path, capsys):
    losses = {}
    for flag in ([], ["--autograd"]):
        out = tmp_path / ("autograd" if flag else "manual")
        args = ["train", "--dataset", "digits", "--hidden", "24,12", "--epochs", "2"]
        args += ["--sparsity", "l1", "--no-progress", "--out", str(out), *flag]
        code, _, _ = run_cli(capsys, *args)
        assert code == 0
        config = json.loads((out / "config.json").read_text())
        assert config["train"]["manual_backward"] is (not flag)
        losses[bool(flag)] = [r["loss"] for r in sparseae.read_history(out)]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
