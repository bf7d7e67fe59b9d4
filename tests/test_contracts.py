"""One meaning per concept: each sparsity's defining property through every model kind that
takes it, every model kind loadable in a fresh interpreter, saved scaling applied by encode,
registries that refuse duplicates, strict configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sparseae
from sparseae.errors import ConfigError
from sparseae.registry import Registry

from .helpers import digits

ROOT = Path(__file__).resolve().parent.parent


def _models(sparsity: str, params: dict, code_activation: str):
    """The same mechanism in both gradient-trained model kinds."""
    torch.manual_seed(0)
    return [
        sparseae.Autoencoder(
            d_in=64, hidden=[32], n_latents=48, code_activation=code_activation,
            sparsity=sparsity, sparsity_params=params, output_activation="linear",
        ),
        sparseae.SAE(
            d_in=64, n_latents=48, sparsity=sparsity, sparsity_params=params,
            code_activation=code_activation,
        ),
    ]  # fmt: skip


@pytest.mark.parametrize("kind", [0, 1], ids=["autoencoder", "sae"])
def test_topk_keeps_exactly_k_in_every_model(kind):
    x, _ = digits(128)
    model = _models("topk", {"k": 5, "relu": False}, "linear")[kind]
    model.eval()
    with torch.no_grad():
        h = model.encode(x)
        assert torch.equal((h != 0).sum(1), torch.full((128,), 5))
        # relu=False is honoured by the sparse path too: forward == decode(encode(x))
        torch.testing.assert_close(model(x), model.decode(h), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", [0, 1], ids=["autoencoder", "sae"])
def test_batchtopk_keeps_k_times_batch_in_training_in_every_model(kind):
    x, _ = digits(64)
    model = _models("batchtopk", {"k": 3}, "relu")[kind]
    out = model.step(x + 1.0)  # positive inputs: enough positive activations to keep k*B
    code = out.code.to_dense() if out.code.is_sparse else out.code
    assert int((code != 0).sum()) == 3 * 64


@pytest.mark.parametrize("make", ["autoencoder", "sae"])
def test_kl_refuses_a_code_outside_the_unit_interval_in_every_model(make):
    cls = {"autoencoder": sparseae.Autoencoder, "sae": sparseae.SAE}[make]
    with pytest.raises(ConfigError, match="needs a code in \\(0, 1\\)"):
        cls(d_in=8, n_latents=4, sparsity="kl", code_activation="relu")
    model = cls(d_in=8, n_latents=4, sparsity="kl", code_activation="sigmoid")
    h = model.encode(torch.randn(16, 8))
    assert bool(((h > 0) & (h < 1)).all())


@pytest.mark.parametrize("kind", [0, 1], ids=["autoencoder", "sae"])
def test_jumprelu_gradient_reaches_theta_in_every_model(kind):
    x, _ = digits(64)
    params = {"weight": 1.0, "bandwidth": 2.0, "threshold_init": 0.5}
    model = _models("jumprelu", params, "relu")[kind]
    model.step(x).loss.backward()
    grad = model.sparsity.log_threshold.grad
    assert grad is not None and int((grad != 0).sum()) > 0


def test_every_model_kind_loads_in_a_fresh_interpreter_and_encode_applies_its_scaling(tmp_path):
    x = torch.rand(300, 16) * 3
    kinds = {
        "autoencoder": sparseae.Autoencoder(d_in=16, n_latents=8, sparsity="topk",
                                            sparsity_params={"k": 3}, code_activation="linear"),
        "sae": sparseae.SAE(d_in=16, n_latents=24, sparsity_params={"k": 3}),
        "sparse_coding": sparseae.NeuralSparseCoding(d_in=16, n_latents=24, target_l0=3),
    }  # fmt: skip
    for name, model in kinds.items():
        sparseae.fit(model, x, epochs=1, batch_size=64)
        model.input_transform.set(x.mean(0).numpy(), (1 / x.std(0)).numpy())
        sparseae.save(model, tmp_path / name)
    torch.save({"x": x}, tmp_path / "x.pt")
    script = f"""
import torch, sparseae
x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)["x"]
for name in {list(kinds)!r}:
    m = sparseae.load({str(tmp_path)!r} + "/" + name)
    a, b = m.encode(x), m.encode(5 * x + 100)
    assert not torch.equal(a, b), name
    torch.save(a, {str(tmp_path)!r} + "/" + name + ".codes")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "src")}, timeout=120)  # fmt: skip
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
    for name, model in kinds.items():
        model.eval()
        codes = torch.load(tmp_path / f"{name}.codes", weights_only=True)
        with torch.no_grad():
            torch.testing.assert_close(codes, model.encode(x))


def test_registries_refuse_duplicates_and_name_the_choices():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)
    with pytest.raises(ConfigError, match="choose one of a"):
        reg.get("b")
    with pytest.raises(ValueError, match="already registered"):

        @sparseae.register_sparsity("topk")
        class Again(sparseae.Sparsity):
            pass


def test_configs_are_strict_and_round_trip(tmp_path):
    cfg = sparseae.ModelConfig(d_in=4, n_latents=2, corruption="gaussian",
                               corruption_params={"clip": (0.0, 1.0)})  # fmt: skip
    assert sparseae.ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="f.json: ModelConfig has no field"):
        sparseae.ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1}, "f.json")
    with pytest.raises(ConfigError, match="SAEConfig.n_latents must be an integer"):
        sparseae.SAEConfig.from_dict({"d_in": 4, "n_latents": "abc"})
    with pytest.raises(
        ConfigError, match="hidden must be a list whose every item is an integer >= 1"
    ):
        sparseae.ModelConfig(d_in=4, n_latents=2, hidden=[1.5])
    with pytest.raises(ConfigError, match="max_grad_norm must be"):
        sparseae.TrainConfig(max_grad_norm=-1)
    with pytest.raises(ConfigError, match="betas must be"):
        sparseae.TrainConfig(betas=(1.5, 0.9))


def test_encode_command_applies_the_saved_scaling_instead_of_refitting(tmp_path, capsys):
    import numpy as np

    from sparseae.cli import main

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(400, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "shifted.npy", 5 * x + 100)
    run = tmp_path / "run"
    args = ["train", "--dataset", str(tmp_path / "x.npy"), "--hidden", "8", "--epochs", "2"]
    assert main([*args, "--scale", "standard", "--no-progress", "--out", str(run)]) == 0
    codes = {}
    for name in ("x", "shifted"):
        out = tmp_path / f"{name}_codes.npy"
        enc = ["encode", str(run), "--dataset", str(tmp_path / f"{name}.npy"), "--out", str(out)]
        assert main(enc) == 0
        codes[name] = np.load(out)
    capsys.readouterr()
    assert not np.allclose(codes["x"], codes["shifted"])  # no silent refit on the new file
    model = sparseae.load(run)
    assert model.input_transform.active


def test_the_catalog_names_every_registered_part_without_importing_torch():
    from sparseae import catalog
    from sparseae.coding import CODERS
    from sparseae.corruptions import CORRUPTIONS
    from sparseae.models.autoencoder.backbones import BACKBONES
    from sparseae.nn_utils import ACTIVATIONS
    from sparseae.sparsities import SPARSITIES

    assert catalog.sparsity_names() == SPARSITIES.names()
    assert catalog.backbone_names() == BACKBONES.names()
    assert catalog.corruption_names() == CORRUPTIONS.names()
    assert catalog.coder_names() == CODERS.names()
    assert catalog.activation_names() == tuple(ACTIVATIONS)
    script = """
import sys
from sparseae.cli import COMMANDS, main
for command in ("", *COMMANDS):
    try:
        main([command, "--help"] if command else ["--help"])
    except SystemExit:
        pass
print("torch imported:", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "src")}, timeout=120)  # fmt: skip
    assert out.returncode == 0 and "torch imported: False" in out.stdout, out.stderr[-2000:]


def test_every_public_name_resolves_lazily():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, sparseae; assert 'torch' not in sys.modules; "
         "[getattr(sparseae, n) for n in sparseae.__all__]; sparseae.errors.ConfigError; "
         "sparseae.models.base; print(len(sparseae.__all__))"],
        capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and int(out.stdout) > 20, out.stderr[-2000:]


@pytest.mark.parametrize("kind", ["autoencoder", "sae"])
def test_decoder_norm_l1_is_invariant_to_rescaling_a_latent_and_its_atom(kind):
    torch.manual_seed(0)
    x = torch.rand(64, 16)
    penalties = {}
    for name in ("l1_decnorm", "l1"):
        if kind == "sae":
            model = sparseae.SAE(d_in=16, n_latents=24, sparsity=name, sparsity_params={})
        else:
            model = sparseae.Autoencoder(d_in=16, n_latents=24, sparsity=name,
                                         output_activation="linear")  # fmt: skip
        atoms, enc = model.decoder_atoms(), model.encoder_atoms()
        before = model.step(x)
        j = int(before.code.mean(0).argmax())  # the busiest latent
        with torch.no_grad():  # latent j three times stronger, its atom a third as long
            enc.rows(enc.weight)[j] *= 3.0
            enc.bias[j] *= 3.0
            atoms.rows(atoms.weight)[j] /= 3.0
        after = model.step(x)
        torch.testing.assert_close(after.terms["recon"], before.terms["recon"])
        penalties[name] = (float(before.terms["sparsity"]), float(after.terms["sparsity"]))
    assert penalties["l1_decnorm"][0] == pytest.approx(penalties["l1_decnorm"][1], rel=1e-5)
    assert penalties["l1"][1] > penalties["l1"][0] * 1.01  # plain L1 is not invariant


def test_decoder_norm_l1_needs_a_linear_dictionary():
    with pytest.raises(ConfigError, match="linear dictionary"):
        sparseae.Autoencoder(d_in=8, hidden=[6], n_latents=4, sparsity="l1_decnorm").step(
            torch.rand(4, 8)
        )


def test_a_decoder_norm_l1_sae_starts_and_trains_as_the_april_update_recipe():
    """Atoms at norm 0.1 with the encoder their transpose, and a free decoder norm; the
    other SAEs keep unit atoms; an explicit ``decoder_init_norm`` wins."""
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    decnorm = sparseae.SAE(d_in=16, n_latents=32, sparsity="l1_decnorm")
    torch.testing.assert_close(decnorm.W_dec.norm(dim=1), torch.full((32,), 0.1))
    torch.testing.assert_close(decnorm.W_enc, decnorm.W_dec.t())
    topk = sparseae.SAE(d_in=16, n_latents=32, sparsity_params={"k": 4})
    torch.testing.assert_close(topk.W_dec.norm(dim=1), torch.ones(32))
    mine = sparseae.SAE(d_in=16, n_latents=32, sparsity="l1_decnorm", decoder_init_norm=0.5)
    torch.testing.assert_close(mine.W_dec.norm(dim=1), torch.full((32,), 0.5))
    sparseae.fit(decnorm, x, epochs=2, batch_size=64, progress=False)
    norms = decnorm.W_dec.norm(dim=1)
    assert float((norms - 0.1).abs().max()) > 1e-3  # the norm moved: not held at any value
    with pytest.raises(ConfigError, match="decoder_init_norm"):
        sparseae.SAE(d_in=16, n_latents=32, decoder_init_norm=0.0)
