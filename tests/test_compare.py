import json
import shutil
import subprocess
import tempfile

import pytest
import torch
from matplotlib import image as mpimg

import sparseae
from sparseae.cli import main
from sparseae.models.sparse_coding import NeuralSparseCoding

from .helpers import digits


def run_cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    code = main(
        [
            "compare",
            "--dataset",
            "digits",
            "--epochs",
            "4",
            "--n-latents",
            "36",
            "--k",
            "5",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_compare_writes_report_figures_and_numbers(compare_dir):
    summary = json.loads((compare_dir / "results.json").read_text())
    methods = [r["method"] for r in summary["results"]]
    assert methods == ["plain", "l2", "kl", "arora", "topk"]
    by = {r["method"]: r for r in summary["results"]}
    assert by["topk"]["l0"] == pytest.approx(5.0)
    assert by["plain"]["l0"] == pytest.approx(36.0)  # sigmoid codes are never exactly 0
    assert by["kl"]["l0_above_0.1"] < by["plain"]["l0_above_0.1"]
    assert all(r["train_seconds"] > 0 and r["parameters"] > 0 for r in summary["results"])
    csv_lines = (compare_dir / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 6 and csv_lines[0].startswith("method,test_mse")
    assert all(r["epoch_seconds"] > 0 for r in summary["results"])
    html = (compare_dir / "report.html").read_text()
    assert html.count("<img src='data:image/png;base64,") == 2 + 2 * 5  # + loss, trade-off
    assert "http://" not in html and "https://" not in html  # offline: no CDN
    for m in methods:
        img = mpimg.imread(compare_dir / f"filters_{m}.png")
        assert img.shape[0] > 150 and img.shape[1] > 600  # four snapshot panels side by side
        assert img[..., :3].std() > 0.05  # not a blank image
        rec = mpimg.imread(compare_dir / f"reconstructions_{m}.png")
        assert rec.shape[1] > rec.shape[0] > 80


def test_compare_sweeps_each_knob_and_draws_the_tradeoff(compare_dir):
    summary = json.loads((compare_dir / "results.json").read_text())
    sweep = summary["sweep"]
    topk = sorted((p for p in sweep if p["method"] == "topk"), key=lambda p: p["value"])
    assert [p["value"] for p in topk] == [2, 5, 10]  # k/2, k, 2k with k=5
    l0 = [p["l0"] for p in topk]
    assert l0 == sorted(l0) and l0[0] < l0[-1]  # L0 rises with k
    main_topk = next(r for r in summary["results"] if r["method"] == "topk")
    assert topk[1]["test_mse"] == main_topk["test_mse"]  # the main run is the k=5 point
    assert {p["knob"] for p in sweep} == {None, "weight decay", "rho", "target L0", "k"}
    kl = sorted((p for p in sweep if p["method"] == "kl"), key=lambda p: p["value"])
    assert kl[0]["l0_above_0.1"] < kl[-1]["l0_above_0.1"]  # a higher rho is denser
    img = mpimg.imread(compare_dir / "tradeoff.png")
    assert img.shape[1] > img.shape[0] > 250 and img[..., :3].std() > 0.05
    html = (compare_dir / "report.html").read_text()
    assert "Trade-off: reconstruction error against sparsity" in html
    assert summary["figures"]["tradeoff"].endswith("tradeoff.png")


def test_compare_report_has_a_verdict_marked_cells_and_provenance(compare_dir):
    summary = json.loads((compare_dir / "results.json").read_text())
    html = (compare_dir / "report.html").read_text()
    assert "<p class='verdict'>At L0 ≈ 5 of 36 latents" in html
    assert summary["verdict"].split(" reconstructs best")[0].endswith(
        ("k-sparse autoencoder (Makhzani &amp; Frey)", "k-sparse autoencoder (Makhzani & Frey)",
         "KL sparse autoencoder (Ng)", "neural sparse coding (Arora et al. 2015)")
    )  # fmt: skip
    assert html.count("class='best'") >= 5
    assert "How the verdict and the bold cells are decided" in html
    assert "untimed warm-up" in html
    assert "<h1>Sparse coding on digits: plain AE, L2, KL, Arora and top-k compared</h1>" in html
    for fact in ("sparseae", "torch", "settings", "seed", "machine", "date"):
        assert f"<dt>{fact}</dt>" in html
    assert f"Made by sparseae {sparseae.__version__}" in html
    assert "document 0" not in html.lower()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["--methods", "plain,bogus"],
            "unknown method bogus: choose from plain, l2, kl, arora, topk",
        ),
        (["--n-latents", "8", "--k", "20"], "topk keeps k=20 of 8 hidden units"),
        (["--hidden", "8", "--k", "20"], "raise --n-latents to at least 20"),  # the old spelling
        (["--dataset", "nowhere.npy"], "nowhere.npy"),
        (["--dataset", "imagenet"], "digits"),
    ],
)
def test_compare_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, fragment):
    code, _, err = run_cli(capsys, "compare", "--epochs", "1", "--out", str(tmp_path), *argv)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], err


def test_compare_spells_settings_as_train_and_keeps_old_spellings(capsys):
    from sparseae.cli import build_parser

    def parsed(*argv):
        return build_parser().parse_args(["compare", *argv])

    default = parsed()
    assert default.n_latents == 100 and default.weight == 0.03
    assert parsed("--n-latents", "7").n_latents == parsed("--hidden", "7").n_latents == 7
    for flag in ("--weight", "--kl-weight", "--beta"):
        assert parsed(flag, "0.5").weight == 0.5
    code, text, _ = run_cli(capsys, "compare", "--help")
    assert code == 0
    assert "--n-latents" in text and "--weight" in text
    assert "--hidden" not in text and "--kl-weight" not in text and "--beta" not in text


def test_arora_rule_learns_unit_norm_atoms_and_round_trips(tmp_path):
    x, _ = digits()
    torch.manual_seed(0)
    model = NeuralSparseCoding(d_in=64, n_latents=48, lr=0.05, target_l0=6)
    hist = sparseae.fit(model, x[:1400], x[1400:], epochs=6, batch_size=64, seed=1)
    assert hist["recon"][-1] < hist["recon"][0]
    norms = model.A.norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    codes = model.encode(x[1400:])
    assert ((codes == 0) | (codes.abs() > model.tau)).all()  # hard threshold at C/2
    assert 0 < hist.last["val_l0"] < 48
    sparseae.save(model, tmp_path / "arora")
    loaded = sparseae.load(tmp_path / "arora")
    assert torch.equal(loaded(x), model(x))


def test_ae_vs_sae_counts_inactive_neurons(tmp_path):
    code = main(
        [
            "ae-vs-sae",
            "--dataset",
            "digits",
            "--epochs",
            "8",
            "--hidden",
            "32,12",
            "--l1",
            "3e-3",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "results.json").read_text())
    ae, sae = summary["rows"]
    assert sae["inactive_per_input"] > ae["inactive_per_input"]
    assert summary["ratio_inactive"] == pytest.approx(
        sae["inactive_per_input"] / ae["inactive_per_input"]
    )
    img = mpimg.imread(tmp_path / "bottleneck_heatmaps.png")
    assert img.shape[1] > img.shape[0] > 200


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_report_renders_in_headless_chromium_with_every_figure_loaded(compare_dir):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    url = (compare_dir / "report.html").resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                CHROMIUM,
                *flags,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert 'data-images-ok="12/12"' in dom.stdout, dom.stdout[-500:] + dom.stderr[-500:]
    shot = compare_dir / "screenshot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                CHROMIUM,
                *flags,
                f"--user-data-dir={profile}",
                "--window-size=1200,1600",
                f"--screenshot={shot}",
                url,
            ],
            capture_output=True,
            timeout=120,
        )
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels[..., :3].std() > 0.05  # not a blank page
    assert (pixels[..., :3] < 0.5).mean() > 0.01  # some dark text/figures are drawn
