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
        ("saelens_topk", "cfg.json", {"architecture": "transcoder"}, "architecture 'transcoder'"),
        ("saelens_topk", "cfg.json", {"normalize_activations": "constant_norm_rescale"},
         "rescales each input"),
        ("sparsify_topk", "cfg.json", {"skip_connection": True}, "skip connection"),
        ("sparsify_topk", "cfg.json", {"transcode": True}, "transcoder"),
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
