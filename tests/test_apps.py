import csv
import re

import numpy as np
import pytest
import torch

import sparseae
from sparseae.apps.denoise import add_gaussian_noise, psnr
from sparseae.apps.features import embedding_figure, encode, linear_probe_accuracy
from sparseae.cli import main


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m") / "topk"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--hidden",
                "48,64",
                "--sparsity",
                "topk",
                "--k",
                "8",
                "--epochs",
                "15",
                "--batch-size",
                "64",
                "--no-progress",
                "--out",
                str(folder),
            ]
        )
        == 0
    )
    return folder


def test_encode_cli_and_linear_probe(trained, tmp_path, capsys):
    code, out, _ = run_cli(
        capsys,
        "encode",
        str(trained),
        "--dataset",
        "digits",
        "--split",
        "train",
        "--out",
        str(tmp_path / "codes.npy"),
    )
    assert code == 0 and "64 latents" in out
    codes = np.load(tmp_path / "codes.npy")
    labels = np.load(tmp_path / "codes_labels.npy")
    assert codes.shape == (len(labels), 64)
    data = sparseae.load_dataset("digits")
    model = sparseae.load(trained)
    test_codes = encode(model, data.test.x)
    acc = linear_probe_accuracy(codes, labels, test_codes, data.test.y)
    assert acc > 0.75  # 10 classes: chance is 0.1
    fig = embedding_figure(test_codes, data.test.y, "digits codes", max_points=300)
    assert len(fig.axes) >= 2


def test_encode_rejects_a_model_with_other_features(trained, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.rand(50, 10).astype(np.float32))
    code, _, err = run_cli(
        capsys,
        "encode",
        str(trained),
        "--dataset",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "c.npy"),
    )
    assert code == 2 and "expects 64 features" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(
        capsys,
        "encode",
        str(tmp_path / "missing"),
        "--dataset",
        "digits",
        "--out",
        str(tmp_path / "c.npy"),
    )
    assert code == 2 and "does not exist" in err


def test_detect_cli_scores_and_flags(tmp_path, capsys):
    out = tmp_path / "scores.csv"
    code, stdout, _ = run_cli(
        capsys,
        "detect",
        "--dataset",
        "digits",
        "--normal-class",
        "0",
        "--epochs",
        "15",
        "--n-std",
        "2",
        "--out",
        str(out),
    )
    assert code == 0
    auroc = float(stdout.split("AUROC (anomaly = not class 0): ")[1].split()[0])
    assert auroc > 0.8
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 359 and set(rows[0]) == {"index", "score", "is_anomaly", "label"}
    code, _, err = run_cli(
        capsys, "detect", "--dataset", "digits", "--normal-class", "12", "--out", str(out)
    )
    assert code == 2 and "choose one of 0, 1, 2" in err


def test_denoise_cli_improves_psnr(tmp_path, capsys):
    code, stdout, _ = run_cli(
        capsys,
        "denoise",
        "--dataset",
        "digits",
        "--sigma",
        "0.4",
        "--hidden",
        "64,32",
        "--epochs",
        "20",
        "--no-progress",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    match = re.search(r"PSNR noisy ([0-9.]+) dB -> denoised ([0-9.]+) dB", stdout)
    assert match, stdout
    assert float(match.group(2)) > float(match.group(1))
    assert (tmp_path / "denoising.png").is_file() and (tmp_path / "model" / "config.json").is_file()


def test_noise_and_psnr_helpers():
    x = np.full((4, 16), 0.5, dtype=np.float32)
    noisy = add_gaussian_noise(x, 0.4, seed=1)
    assert noisy.min() >= 0 and noisy.max() <= 1 and not np.allclose(noisy, x)
    assert psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-3)
    assert torch.__version__
