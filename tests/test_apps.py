import csv
import re

import numpy as np
import pytest

import sparseae
from sparseae import metrics
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
    assert len(rows) == 359 and set(rows[0]) == {"row", "split", "score", "is_anomaly", "label"}
    # digits' held-out test split, keyed by the row of scikit-learn's digits array
    test = sparseae.load_dataset("digits").test
    assert [int(r["row"]) for r in rows] == test.rows.tolist()
    assert [int(r["label"]) for r in rows] == test.y.tolist()
    assert {r["split"] for r in rows} == {"test"}
    code, _, err = run_cli(
        capsys, "detect", "--dataset", "digits", "--normal-class", "12", "--out", str(out)
    )
    assert code == 2 and "choose one of 0, 1, 2" in err


def test_detect_takes_train_sparsity_flags(tmp_path, capsys):
    from sparseae.cli import build_parser
    from sparseae.cli.detect import _build_model
    from sparseae.sparsities import sparsity_names

    out = str(tmp_path / "s.csv")
    argv = ["detect", "--dataset", "digits", "--sparsity", "topk", "--k", "4", "--epochs", "2"]
    args = build_parser().parse_args([*argv, "--out", out])
    data = sparseae.load_dataset("digits")
    model = _build_model(args, data)
    assert model.config.sparsity == "topk" and model.config.sparsity_params == {"k": 4}
    assert model.config.code_activation == "linear"  # train's default for topk
    code, stdout, err = run_cli(capsys, *argv, "--out", out)
    assert code == 0, err
    assert "flagged" in stdout and len((tmp_path / "s.csv").read_text().splitlines()) == 360
    default = _build_model(build_parser().parse_args(["detect", "--out", out]), data)
    assert default.config.sparsity == "l1" and default.config.sparsity_params == {"weight": 1e-4}
    code, _, err = run_cli(capsys, "detect", "--sparsity", "l1", "--k", "4", "--out", out)
    assert code == 2 and "--k does not apply to --sparsity l1" in err
    code, stdout, _ = run_cli(capsys, "detect", "--help")
    assert code == 0 and all(name in stdout for name in sparsity_names())
    assert "--code-activation" in stdout


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
    # the noise: seeded, of the asked sigma around the clean input, clipped to [0, 1]
    x = np.full((200, 64), 0.5, dtype=np.float32)
    noisy = add_gaussian_noise(x, 0.1, seed=1)
    assert noisy.dtype == np.float32 and noisy.shape == x.shape
    np.testing.assert_array_equal(noisy, add_gaussian_noise(x, 0.1, seed=1))
    assert not np.array_equal(noisy, add_gaussian_noise(x, 0.1, seed=2))
    assert abs(float((noisy - x).mean())) < 0.005  # unbiased: 12,800 draws, sd of mean ~0.001
    assert float((noisy - x).std()) == pytest.approx(0.1, rel=0.03)
    wide = add_gaussian_noise(x, 2.0, seed=1)
    assert wide.min() == 0.0 and wide.max() == 1.0  # clipped, and sigma 2 reaches both ends
    # PSNR: 10 log10(range^2 / MSE) per image, then the mean over images
    assert psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-3)  # MSE 0.01 at range 1
    assert psnr(x * 255, x * 255 + 25.5, data_range=255.0) == pytest.approx(20.0, abs=1e-3)
    two = np.stack([np.full(16, 0.1), np.full(16, 0.01)])  # errors of image 0 and image 1
    assert psnr(np.zeros((2, 16)), two) == pytest.approx((20.0 + 40.0) / 2)  # not 10log10(1/mean)
    assert psnr(x, x) == pytest.approx(120.0)  # a perfect image is floored, not infinite
    assert psnr is metrics.psnr  # one definition, shared by the app and sparseae.metrics


def test_detect_cli_combined_score_and_the_plain_error(tmp_path, capsys):
    """The default score is SparseAEDetector's combined one; ``--score reconstruction`` writes
    the model's mean squared errors. On digit 1 (thin strokes, whose reconstruction error
    says little about shape) the combined score separates the other digits better."""
    from sparseae.apps.anomaly import reconstruction_errors
    from sparseae.checkpoint import save

    base = ["detect", "--dataset", "digits", "--normal-class", "1", "--epochs", "10"]
    aurocs = {}
    for score in ("combined", "reconstruction"):
        out = tmp_path / f"{score}.csv"
        code, stdout, _ = run_cli(capsys, *base, "--score", score, "--out", str(out))
        assert code == 0
        aurocs[score] = float(stdout.split("AUROC (anomaly = not class 1): ")[1].split()[0])
    assert aurocs["combined"] > aurocs["reconstruction"] + 0.02
    # a saved model scored by reconstruction: the CSV holds exactly its errors
    data = sparseae.load_dataset("digits")
    model = sparseae.Autoencoder(d_in=64, n_latents=8, output_activation="sigmoid")
    sparseae.fit(model, data.train.x, epochs=2, progress=False)
    save(model, tmp_path / "m")
    out = tmp_path / "plain.csv"
    args = ["detect", "--dataset", "digits", "--model", str(tmp_path / "m"), "--out", str(out)]
    assert run_cli(capsys, *args, "--score", "reconstruction")[0] == 0
    scores = [float(r["score"]) for r in csv.DictReader(out.open())]
    np.testing.assert_allclose(scores, reconstruction_errors(model, data.test.x), rtol=1e-5)
