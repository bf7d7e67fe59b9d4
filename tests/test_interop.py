"""SAE folders of SAELens, sparsify and dictionary_learning load into sparseae to the same
outputs, and sparseae's exports are the folders those libraries loaded with their own
loaders. The fixtures were written by the real packages (tests/fixtures/make_peer_checkpoints.py,
versions in tests/fixtures/peers/VERSIONS.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import sparseae
from sparseae.cli import main
from sparseae.errors import CheckpointError
from sparseae.interop import detect_format, export

PEERS = Path(__file__).resolve().parent / "fixtures" / "peers"
EXPECTED = load_file(str(PEERS / "expected.safetensors"))
X = EXPECTED["x"]
FOREIGN = {
    "saelens_topk": "saelens",
    "saelens_jumprelu": "saelens",
    "saelens_standard": "saelens",
    "saelens_gated": "saelens",
    "sparsify_topk": "sparsify",
    "dl_topk": "dictionary-learning",
    "dl_batchtopk": "dictionary-learning",
    "dl_standard": "dictionary-learning",
    "dl_gated": "dictionary-learning",
    "dl_matryoshka": "dictionary-learning",
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_a_peer_folder_is_detected_and_loads_to_the_peers_outputs(name):
    assert detect_format(PEERS / name) == FOREIGN[name]
    model = sparseae.load(PEERS / name)
    assert isinstance(model, sparseae.SAE | sparseae.GatedSAE)
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode(X), EXPECTED[f"{name}.encode"], atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(model(X), EXPECTED[f"{name}.forward"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["saelens", "sparsify", "dictionary-learning"])
def test_exports_are_what_the_peers_loaded_and_round_trip(tmp_path, fmt):
    source = sparseae.load(PEERS / "source_topk")
    out = export(source, tmp_path / fmt, fmt)
    committed = PEERS / f"export_{fmt}"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in committed.iterdir())
    for cfg in ("cfg.json", "config.json"):
        if (committed / cfg).exists():
            assert json.loads((out / cfg).read_text()) == json.loads((committed / cfg).read_text())
    with torch.no_grad():
        mine = source(X)
        # the peer's own loader read the committed export to these outputs
        torch.testing.assert_close(EXPECTED[f"export_{fmt}.forward"], mine, atol=1e-5, rtol=1e-5)
        # and sparseae reads its fresh export back to the same
        torch.testing.assert_close(sparseae.load(out)(X), mine, atol=1e-6, rtol=1e-6)


def test_the_export_command_writes_a_folder_the_loader_reads(tmp_path, capsys):
    code = main(["export", str(PEERS / "source_topk"), "--format", "sparsify",
                 "--out", str(tmp_path / "s")])  # fmt: skip
    assert code == 0 and "wrote" in capsys.readouterr().out
    assert detect_format(tmp_path / "s") == "sparsify"


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(PEERS / name, dst)
    return dst


@pytest.mark.parametrize(
    ("name", "file", "change", "message"),
    [
        ("saelens_topk", "cfg.json", {"architecture": "temporal"}, "architecture 'temporal'"),
        ("saelens_topk", "cfg.json", {"normalize_activations": "constant_norm_rescale"},
         "rescales each input"),
        ("saelens_topk", "cfg.json", {"architecture": "skip_transcoder"}, "no tensor 'W_skip'"),
        ("saelens_skip_transcoder", "cfg.json", {"normalize_activations": "layer_norm"},
         "rescales each input"),
        ("sparsify_topk", "cfg.json", {"skip_connection": True}, "no tensor 'W_skip'"),
        ("sparsify_topk", "cfg.json", {"activation": "groupmax"}, "'groupmax' is not supported"),
        ("dl_topk", "config.json", {"trainer": {"dict_class": "CrossCoder"}},
         "'CrossCoder' is not representable"),
    ],
)  # fmt: skip
def test_what_the_dictionary_model_cannot_represent_is_refused(tmp_path, name, file, change,
                                                               message):  # fmt: skip
    folder = _copy(name, tmp_path)
    cfg = json.loads((folder / file).read_text())
    cfg.update(change)
    (folder / file).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        sparseae.load(folder)


def test_a_dictionary_learning_pickle_with_code_in_it_is_not_loaded(tmp_path):
    import pickle

    folder = _copy("dl_topk", tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    (folder / "ae.pt").write_bytes(pickle.dumps({"encoder.weight": Payload()}))
    with pytest.raises(CheckpointError, match="not a tensors-only state dict"):
        sparseae.load(folder)


def test_exports_refuse_what_the_target_cannot_hold(tmp_path):
    kl = sparseae.SAE(d_in=4, n_latents=8, sparsity="kl", code_activation="sigmoid")
    with pytest.raises(CheckpointError, match="relu code activation"):
        export(kl, tmp_path / "a", "saelens")
    scaled = sparseae.SAE(d_in=4, n_latents=8, sparsity_params={"k": 2})
    scaled.input_transform.set(0.0, 3.0)
    with pytest.raises(CheckpointError, match="fold it first"):
        export(scaled, tmp_path / "b", "sparsify")
    export(scaled.fold_input_transform(), tmp_path / "c", "sparsify")


PEER_PYTHON = Path(__file__).resolve().parents[1] / ".peers" / "bin" / "python"


def test_round_trips_through_the_real_packages():
    """sparseae -> peer and peer -> sparseae -> peer with the packages' own loaders, where
    `make peers` could install them (CI tries; without them the fixtures above still hold)."""
    import os
    import subprocess
    import sys

    if not PEER_PYTHON.exists():
        pytest.skip("the peer packages are not installed (make peers)")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    proc = subprocess.run(
        [str(PEER_PYTHON), str(PEERS.parent / "peer_round_trip.py")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": site},
    )  # fmt: skip
    if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
        pytest.skip(f"a peer package cannot be imported: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(diffs) == 7 and max(diffs.values()) < 1e-5, diffs


def test_a_saelens_topk_trained_with_decoder_norm_rescaling_is_folded(tmp_path):
    """SAELens' own rule (topk_sae.py): select on pre * ||d_j||, decode with unit atoms."""
    folder = _copy("saelens_topk", tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["rescale_acts_by_decoder_norm"] = True
    (folder / "cfg.json").write_text(json.dumps(cfg))
    t = load_file(str(folder / "sae_weights.safetensors"))
    norms = t["W_dec"].norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))  # a training-mode folder
    pre = (X - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    scaled = pre * norms
    top = scaled.topk(cfg["k"], dim=-1)
    acts = torch.zeros_like(scaled).scatter_(-1, top.indices, top.values.relu())
    expected = acts @ (t["W_dec"] / norms[:, None]) + t["b_dec"]
    with torch.no_grad():
        torch.testing.assert_close(sparseae.load(folder)(X), expected, atol=1e-5, rtol=1e-5)


# -- transcoders, gated and Matryoshka SAEs (issue #17) ---------------------------------------

EXPECTED_TC = load_file(str(PEERS / "expected_transcoders.safetensors"))
TRANSCODER_FOLDERS = {
    # name: (format, d_out, skip)
    "saelens_skip_transcoder": ("saelens", 12, True),
    "saelens_jumprelu_transcoder": ("saelens", 12, False),
    "sparsify_transcoder": ("sparsify", 16, True),
    "sparsify_skip": ("sparsify", 16, True),  # an SAE (not transcoding) with a skip connection
}


@pytest.mark.parametrize("name", sorted(TRANSCODER_FOLDERS))
def test_a_peer_transcoder_loads_to_the_peers_outputs(name):
    fmt, d_out, skip = TRANSCODER_FOLDERS[name]
    assert detect_format(PEERS / name) == fmt
    model = sparseae.load(PEERS / name)
    assert isinstance(model, sparseae.Transcoder)
    assert (model.config.d_out, model.config.skip) == (d_out, skip)
    x = EXPECTED_TC["x"]
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), EXPECTED_TC[f"{name}.encode"], atol=1e-5,
                                   rtol=1e-5)  # fmt: skip
        torch.testing.assert_close(model(x), EXPECTED_TC[f"{name}.forward"], atol=1e-5,
                                   rtol=1e-5)  # fmt: skip


def _random(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        if getattr(model.sparsity, "name", "") == "batchtopk":
            model.sparsity.threshold.fill_(0.3)
    return model.eval()


def _transcoder(d_out: int, sparsity: str, skip: bool):
    params = {"k": 4} if sparsity == "topk" else {}
    return sparseae.Transcoder(d_in=16, d_out=d_out, n_latents=48, sparsity=sparsity,
                               sparsity_params=params, skip=skip)  # fmt: skip


def _matryoshka():
    return sparseae.MatryoshkaSAE(d_in=16, n_latents=48, sparsity_params={"k": 4},
                                  widths=(8, 24))  # fmt: skip


ROUND_TRIPS = {
    "transcoder_topk_skip-sparsify": (lambda: _transcoder(16, "topk", True), "sparsify"),
    "transcoder_topk-sparsify": (lambda: _transcoder(16, "topk", False), "sparsify"),
    "transcoder_relu-saelens": (lambda: _transcoder(12, "none", False), "saelens"),
    "transcoder_relu_skip-saelens": (lambda: _transcoder(12, "none", True), "saelens"),
    "transcoder_jumprelu-saelens": (lambda: _transcoder(12, "jumprelu", False), "saelens"),
    "transcoder_jumprelu_skip-saelens": (lambda: _transcoder(12, "jumprelu", True), "saelens"),
    "transcoder_batchtopk_skip-saelens": (
        lambda: _transcoder(12, "batchtopk", True),
        "saelens",
    ),  # fmt: skip
    "gated-saelens": (lambda: sparseae.GatedSAE(d_in=16, n_latents=48), "saelens"),
    "gated-dictionary-learning": (
        lambda: sparseae.GatedSAE(d_in=16, n_latents=48),
        "dictionary-learning",
    ),  # fmt: skip
    "matryoshka-dictionary-learning": (_matryoshka, "dictionary-learning"),
    "matryoshka-saelens": (_matryoshka, "saelens"),  # as SAELens' trainer saves it: JumpReLU
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_new_architectures_round_trip_through_the_peer_folders(tmp_path, case):
    make, fmt = ROUND_TRIPS[case]
    model = _random(make(), seed=len(case))
    back = sparseae.load(export(model, tmp_path / "out", fmt))
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    expected_cls = sparseae.SAE if case == "matryoshka-saelens" else type(model)
    assert type(back) is expected_cls
    if isinstance(model, sparseae.Transcoder):
        assert (back.config.d_out, back.config.skip) == (model.config.d_out, model.config.skip)
    if fmt == "dictionary-learning" and isinstance(model, sparseae.MatryoshkaSAE):
        assert back.config.widths == model.config.widths
    with torch.no_grad():
        code = model.encode(x)
        assert 0 < (code != 0).float().mean() < 1  # the check is not on an all-zero code
        torch.testing.assert_close(back.encode(x), code, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(back(x), model(x), atol=1e-6, rtol=1e-6)


def _scaled(model):
    model.input_transform.set(0.0, 3.0)
    return model


@pytest.mark.parametrize(
    ("make", "fmt", "message"),
    [
        (lambda: _transcoder(12, "topk", False), "saelens", "SAELens has no 'topk' transcoder"),
        (lambda: _transcoder(12, "topk", True), "sparsify", "as wide as the input"),
        (lambda: _transcoder(16, "jumprelu", False), "sparsify", "sparsify holds TopK codes"),
        (lambda: _transcoder(16, "topk", False), "dictionary-learning", "no transcoder class"),
        (lambda: _scaled(_transcoder(12, "none", False)), "saelens", "has no input scaling"),
        (lambda: sparseae.GatedSAE(d_in=4, n_latents=8), "sparsify",
         "no layout for a gated_sae model"),
        (lambda: _scaled(sparseae.GatedSAE(d_in=4, n_latents=8)), "dictionary-learning",
         "has no input scaling"),
        (_matryoshka, "dictionary-learning", "no inference threshold yet"),
    ],
)  # fmt: skip
def test_new_architecture_exports_refuse_what_the_target_cannot_hold(tmp_path, make, fmt,
                                                                      message):  # fmt: skip
    with pytest.raises(CheckpointError, match=message):
        export(make(), tmp_path / "out", fmt)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_export_command_writes_a_transcoder_and_refuses_a_fold_it_cannot_do(tmp_path,
                                                                               capsys):  # fmt: skip
    model = _random(_transcoder(12, "jumprelu", True), seed=3)
    sparseae.save(model, tmp_path / "tc")
    assert main(["export", str(tmp_path / "tc"), "--format", "saelens",
                 "--out", str(tmp_path / "s")]) == 0  # fmt: skip
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    assert (cfg["architecture"], cfg["d_out"]) == ("jumprelu_skip_transcoder", 12)
    sparseae.save(_scaled(_random(_transcoder(12, "none", False), seed=4)), tmp_path / "scaled")
    code = main(["export", str(tmp_path / "scaled"), "--format", "saelens", "--fold-scaling",
                 "--out", str(tmp_path / "t")])  # fmt: skip
    assert code == 2 and "has no fold" in capsys.readouterr().err


def test_new_architectures_round_trip_through_the_real_packages():
    """Each new export loaded by the peer's own class, and each peer transcoder folder sent
    through sparseae and back (tests/fixtures/make_peer_checkpoints.py --live)."""
    import os
    import subprocess
    import sys

    if not PEER_PYTHON.exists():
        pytest.skip("the peer packages are not installed (make peers)")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    proc = subprocess.run(
        [str(PEER_PYTHON), str(PEERS.parent / "make_peer_checkpoints.py"), "--live"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": site},
    )  # fmt: skip
    if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
        pytest.skip(f"a peer package cannot be imported: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(diffs) == 13 and max(diffs.values()) < 1e-5, diffs
