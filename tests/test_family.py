"""The autoencoder family (document 003) as configurations of one Autoencoder: conv and lstm
backbones x every sparsity, tied weights, corruption, greedy layer-wise stacking."""

from __future__ import annotations

import pytest
import torch

import sparseae
from sparseae.corruptions import make_corruption
from sparseae.errors import ConfigError
from sparseae.models.autoencoder.backbones.conv import conv_code_size
from sparseae.training.evaluate import evaluate
from sparseae.training.greedy import shallow_configs, train_layerwise

from .helpers import digits


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread avoids OpenMP hand-offs that dominate on a busy
    2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SPARSITY = {
    "none": ("relu", {}),
    "l1": ("relu", {"weight": 1e-3}),
    "kl": ("sigmoid", {"rho": 0.1, "weight": 0.01}),
    "topk": ("linear", {"k": 6}),
}


def family_model(backbone: str, sparsity: str = "none", **extra) -> sparseae.Autoencoder:
    code_act, params = SPARSITY[sparsity]
    shape = {"conv": dict(n_latents=32, backbone_params={"channels": (4, 8)})}.get(
        backbone, dict(hidden=(24,), n_latents=12)
    )
    return sparseae.Autoencoder(
        **{
            "d_in": 64,
            "input_shape": (8, 8),
            "backbone": backbone,
            "activation": "relu",
            "code_activation": code_act,
            "loss": "bce",
            "sparsity": sparsity,
            "sparsity_params": params,
            **shape,
            **extra,
        }
    )


@pytest.mark.parametrize("sparsity", list(SPARSITY))
@pytest.mark.parametrize("backbone", ["conv", "lstm"])
def test_every_backbone_trains_with_every_sparsity(backbone: str, sparsity: str) -> None:
    x, _ = digits(320)
    torch.manual_seed(0)
    model = family_model(backbone, sparsity)
    before = evaluate(model, x)["recon"]
    sparseae.fit(model, x, epochs=3, batch_size=32, lr=5e-3, progress=False)
    after = evaluate(model, x)
    assert after["recon"] < before - 0.02
    code = model.eval().encode(x)
    assert code.shape == (320, model.n_latents)
    assert model(x).shape == x.shape
    if sparsity == "topk":
        assert int((code != 0).sum(1).max()) <= 6
    if sparsity == "kl":
        assert float(code.detach().min()) > 0 and float(code.detach().max()) < 1


def test_document_003_conv_architecture_shapes_and_size() -> None:
    """28x28 -> 16,32,64 maps pooled to 64x3x3 = 576; transposed convs give 7, 14, 28; the
    parameter count is the Keras model's (46,529)."""
    assert conv_code_size((28, 28), (16, 32, 64)) == 576
    model = sparseae.Autoencoder(
        d_in=784, n_latents=576, backbone="conv", input_shape=(28, 28), activation="gelu"
    )
    assert sum(p.numel() for p in model.parameters()) == 46_529
    sizes = []
    a = torch.rand(2, 576).reshape(2, 64, 3, 3)
    bb = model.backbone
    for i in range(len(bb.dec_biases)):
        a = bb.transposed_conv(i, a)
        sizes.append(tuple(a.shape[1:]))
    assert sizes == [(32, 7, 7), (16, 14, 14), (1, 28, 28)]
    assert model(torch.rand(2, 784)).shape == (2, 784)


def test_transposed_convs_align_like_keras_same_padding() -> None:
    """Keras' Conv2DTranspose(3, strides=2, padding='same') on 7x7 keeps the first 14 rows
    of the full 15-row output: an impulse at (0, 0) through an all-ones kernel lights the
    top-left 3x3 block (PyTorch's padding=1 would crop it to 2x2)."""
    model = sparseae.Autoencoder(
        d_in=784, n_latents=576, backbone="conv", input_shape=(28, 28), activation="gelu"
    )
    bb = model.backbone
    with torch.no_grad():
        bb.dec_weights[1].fill_(1.0)
        bb.dec_biases[1].zero_()
        a = torch.zeros(1, 32, 7, 7)
        a[0, 0, 0, 0] = 1.0
        out = bb.transposed_conv(1, a)[0, 0]
    assert out.shape == (14, 14)
    assert torch.equal(out.nonzero(), torch.cartesian_prod(torch.arange(3), torch.arange(3)))


def test_document_003_lstm_architecture_size() -> None:
    """Keras' LSTM 100-30 / repeat / LSTM 100 / dense 28 has 122,548 parameters; PyTorch's
    LSTM keeps two bias vectors per layer (4 x units more each)."""
    model = sparseae.Autoencoder(
        d_in=784, hidden=(100,), n_latents=30, backbone="lstm", input_shape=(28, 28)
    )
    extra_bias = 4 * (100 + 30 + 100)
    assert sum(p.numel() for p in model.parameters()) == 122_548 + extra_bias
    forget = model.backbone.encoder[0].bias_ih_l0[100:200]
    assert torch.equal(forget, torch.ones(100))


def test_conv_bottleneck_and_lstm_linear_head_give_any_code_size() -> None:
    x, _ = digits(8)
    conv = family_model("conv", n_latents=5)
    lstm = family_model("lstm", "kl", backbone_params={"code_head": "linear"}, n_latents=7)
    assert conv.encode(x).shape == (8, 5) and conv(x).shape == (8, 64)
    assert lstm.encode(x).shape == (8, 7) and lstm(x).shape == (8, 64)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(backbone="conv", input_shape=None), "needs the image shape"),
        (dict(backbone="conv", backbone_params={"channels": (4, 8, 8, 8)}), "shrink"),
        (dict(backbone="conv", hidden=(10,)), "takes no hidden sizes"),
        (dict(backbone="lstm", input_shape=(4, 4)), "holds 16 values"),
        (dict(backbone="lstm", backbone_params={"width": 3}), "takes no parameter width"),
    ],
)
def test_bad_backbone_settings_raise_clear_errors(kwargs: dict, message: str) -> None:
    base = dict(d_in=64, n_latents=32, input_shape=(8, 8))
    with pytest.raises(ConfigError, match=message):
        sparseae.Autoencoder(**{**base, **kwargs})


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_tied_decoder_shares_storage_with_its_encoder(backbone: str) -> None:
    model = family_model(backbone, tied=True)
    bb = model.backbone
    assert bb.dec_weights is None
    n = len(bb.enc_weights)
    for i in range(n):
        dec = bb.decoder_weight(i) if backbone == "mlp" else bb.decoder_kernel(i)
        assert dec.data_ptr() == bb.enc_weights[n - 1 - i].data_ptr()
    untied = family_model(backbone)
    n_tied = sum(p.numel() for p in model.parameters())
    assert n_tied == sum(p.numel() for p in untied.parameters()) - sum(
        w.numel() for w in untied.backbone.dec_weights
    )
    x, _ = digits(200)
    before = evaluate(model, x)["recon"]
    sparseae.fit(model, x, epochs=3, lr=3e-3, progress=False)
    assert evaluate(model, x)["recon"] < before


@pytest.mark.parametrize(
    "backbone, extra",
    [
        ("conv", {}),
        ("conv", {"tied": True, "n_latents": 10}),
        ("lstm", {"sparsity": "topk"}),
        ("mlp", {"tied": True, "sparsity": "kl"}),
    ],
)
def test_saved_folder_restores_the_model_exactly(tmp_path, backbone: str, extra: dict) -> None:
    sparsity = extra.pop("sparsity", "none")
    model = family_model(backbone, sparsity, **extra)
    x, _ = digits(64)
    sparseae.fit(model, x, epochs=1, progress=False)
    sparseae.save(model, tmp_path / "m")
    loaded = sparseae.load(tmp_path / "m")
    assert loaded.config == model.config
    model.eval()
    assert torch.equal(loaded(x), model(x))
    assert torch.equal(loaded.encode(x), model.encode(x))


@pytest.mark.parametrize(
    "corruption, params",
    [("gaussian", {"sigma": 0.3}), ("dropout", {"p": 0.5}), ("masking", {"p": 0.3})],
)
@pytest.mark.parametrize("backbone", ["mlp", "conv", "lstm"])
def test_corruption_only_in_training_and_target_stays_clean(
    backbone: str, corruption: str, params: dict
) -> None:
    model = family_model(backbone, corruption=corruption, corruption_params=params)
    x, _ = digits(32)
    model.train()
    noisy = model.corruption(x)
    assert not torch.equal(noisy, x)
    if corruption == "gaussian":
        assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1  # clipped to the data range
    torch.manual_seed(3)
    out = model.step(x)
    torch.manual_seed(3)
    code = model.encode(model.corruption(x))
    expected = model.reconstruction_loss(model.decode_logits(code), x)  # target: the clean x
    assert torch.allclose(out.terms["recon"], expected)
    model.eval()
    assert model.corruption(x) is x
    assert torch.equal(model(x), model(x))
    assert torch.equal(model.step(x).code, model.encode(x))


@pytest.mark.parametrize("name, p, survivor", [("dropout", 0.3, 1 / 0.7), ("masking", 0.3, 1.0)])
def test_dropout_and_masking_zero_a_fraction_p_and_scale_as_keras(
    name: str, p: float, survivor: float
) -> None:
    corruption = make_corruption(name, p=p)
    x = torch.rand(200, 500) + 0.5  # no zeros of its own
    torch.manual_seed(0)
    noisy = corruption.corrupt(x)
    zeroed = noisy == 0
    assert abs(float(zeroed.float().mean()) - p) < 0.01
    assert torch.allclose(noisy[~zeroed], x[~zeroed] * survivor)
    assert make_corruption(name, p=0.0).corrupt(x).equal(x)


def test_train_layerwise_builds_a_sparse_stack_that_fine_tunes() -> None:
    x, _ = digits(300)
    cfg = sparseae.ModelConfig(
        d_in=64,
        hidden=(32, 24),
        n_latents=16,
        activation="relu",
        code_activation="linear",
        loss="bce",
        sparsity="topk",
        sparsity_params={"k": 4},
    )
    layers_cfg = shallow_configs(cfg)
    assert [(c.d_in, c.n_latents) for c in layers_cfg] == [(64, 32), (32, 24), (24, 16)]
    assert [c.sparsity for c in layers_cfg] == ["none", "none", "topk"]
    shallow: list[sparseae.Autoencoder] = []

    def keep(layer_log: dict) -> None:
        shallow.append(layer_log)

    stacked = train_layerwise(cfg, x, epochs=2, log=keep)
    assert [r["layer"] for r in shallow] == [1, 2, 3]
    # rebuild the shallow encoders from the stack's weights and compose them by hand
    bb = stacked.backbone.eval()
    stacked.eval()
    a = x
    for i, (w, b) in enumerate(zip(bb.enc_weights, bb.enc_biases, strict=True)):
        a = a @ w.t() + b
        a = torch.relu(a) if i < 2 else stacked.sparsity(a)
    assert torch.allclose(stacked.encode(x), a, atol=1e-6)
    before = evaluate(stacked, x)["recon"]
    sparseae.fit(stacked, x, epochs=3, lr=3e-3, progress=False)
    assert evaluate(stacked, x)["recon"] < before


def test_greedy_stack_equals_composed_shallow_encoders() -> None:
    """Each shallow model's own encode, chained, equals the stacked encode (no re-derivation)."""
    from sparseae.training.greedy import stack

    x, _ = digits(200)
    cfg = sparseae.ModelConfig(d_in=64, hidden=(20,), n_latents=10, activation="relu", loss="bce")
    layers = []
    torch.manual_seed(0)
    for c in shallow_configs(cfg):
        layer = sparseae.Autoencoder(c)
        sparseae.fit(
            layer, x if not layers else layers[-1].encode(x).detach(), epochs=1, progress=False
        )
        layers.append(layer.eval())
    stacked = stack(cfg, layers).eval()
    with torch.no_grad():
        composed = layers[1].encode(layers[0].encode(x))
        assert torch.equal(stacked.encode(x), composed)
        # the decoder is the shallow decoders reversed (the inner one's linear output aside)
        inner = layers[1].decode_logits(composed)
        assert torch.allclose(
            stacked.decode_logits(composed), layers[0].decode_logits(torch.relu(inner)), atol=1e-6
        )


def test_greedy_rejects_non_mlp_backbones() -> None:
    cfg = sparseae.ModelConfig(d_in=64, n_latents=32, backbone="conv", input_shape=(8, 8))
    with pytest.raises(ConfigError, match="stacks mlp layers"):
        shallow_configs(cfg)


# -- command line ----------------------------------------------------------------------------
def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from sparseae.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


TRAIN = ("train", "--dataset", "digits", "--epochs", "1", "--no-progress", "--loss", "bce")


def test_cli_trains_conv_and_lstm_backbones(tmp_path, capsys) -> None:
    code, out, err = run_cli(
        capsys, *TRAIN, "--backbone", "conv", "--conv-channels", "4,8", "--tied",
        "--sparsity", "l1", "--out", str(tmp_path / "conv"),
    )  # fmt: skip
    assert code == 0, err
    model = sparseae.load(tmp_path / "conv")
    assert model.config.backbone == "conv" and model.config.tied and model.n_latents == 32
    assert "conv 4-8" in out
    code, out, err = run_cli(
        capsys, *TRAIN, "--backbone", "lstm", "--hidden", "16,8", "--sparsity", "topk",
        "--k", "3", "--out", str(tmp_path / "lstm"),
    )  # fmt: skip
    assert code == 0, err
    model = sparseae.load(tmp_path / "lstm")
    assert model.config.backbone == "lstm" and model.config.input_shape == (8, 8)


def test_cli_layerwise_pretrains_each_layer_then_fine_tunes(tmp_path, capsys) -> None:
    code, out, err = run_cli(
        capsys, *TRAIN, "--hidden", "32,16", "--layerwise", "--layerwise-epochs", "1",
        "--corruption", "masking", "--corruption-p", "0.2", "--out", str(tmp_path / "lw"),
    )  # fmt: skip
    assert code == 0, err
    assert "layer  1 (64->32) pre-trained" in out and "layer  2 (32->16) pre-trained" in out
    assert "epoch   1/1" in out
    assert sparseae.load(tmp_path / "lw").config.hidden == (32,)


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--conv-channels", "4,8"), "--conv-channels applies to --backbone conv only"),
        (("--backbone", "conv", "--hidden", "8,4"), "takes at most one --hidden size"),
        (("--backbone", "conv", "--layerwise"), "stacks mlp layers"),
        (("--backbone", "lstm", "--lstm-code-head", "linear"), "needs at least one hidden"),
    ],
)
def test_cli_rejects_bad_family_options_in_one_line(tmp_path, capsys, argv, message) -> None:
    extra = ("--hidden", "8") if "--lstm-code-head" in argv else ()
    code, _, err = run_cli(capsys, *TRAIN, *argv, *extra, "--out", str(tmp_path / "x"))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
