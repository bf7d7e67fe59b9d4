"""Transcoder: trained on (input, output) pairs of a real layer written in one extraction
pass, evaluated on the output; AuxK explains the output's residual."""

from __future__ import annotations

import pytest
import torch

import sparseae
from sparseae.apps.classifier import train_classifier
from sparseae.cli import main
from sparseae.data.activations import extract_activations
from sparseae.models import Transcoder

from .helpers import digits


@pytest.fixture(scope="module")
def pairs():
    x, y = digits()
    clf = train_classifier(x[:1000], y[:1000], epochs=2, seed=0, hidden=(48, 32))
    rows = extract_activations(clf, "fc2", x, pair=True).x  # fc2's input (48) and output (32)
    direct_in = extract_activations(clf, "act1", x).x
    direct_out = extract_activations(clf, "fc2", x).x
    return clf, rows, direct_in, direct_out


def test_paired_extraction_holds_the_layers_input_and_output(pairs):
    _, rows, direct_in, direct_out = pairs
    assert rows.shape == (len(direct_in), 48 + 32)
    torch.testing.assert_close(torch.as_tensor(rows[:, :48]), torch.as_tensor(direct_in))
    torch.testing.assert_close(torch.as_tensor(rows[:, 48:]), torch.as_tensor(direct_out))


def test_a_transcoder_learns_the_layer_and_is_evaluated_on_its_output(pairs):
    clf, rows, direct_in, direct_out = pairs
    torch.manual_seed(0)
    model = Transcoder(d_in=48, d_out=32, n_latents=96, sparsity_params={"k": 8})
    history = sparseae.fit(model, rows[:1400], rows[1400:], epochs=20, batch_size=64, lr=3e-3,
                           dead_after=2000, aux_k=16)  # fmt: skip
    assert history["val_recon"][-1] < 0.5 * history["val_recon"][0]
    assert history.last["aux"] >= 0  # AuxK ran on the output's residual
    with torch.no_grad():
        pred = model(torch.as_tensor(direct_in[1400:]))
        out = torch.as_tensor(direct_out[1400:])
        mse = float(((pred - out) ** 2).mean())
    assert mse == pytest.approx(history.last["val_recon"], rel=1e-4)  # val is the output's
    assert mse < 0.2 * float(out.var())
    assert (model.encode(torch.as_tensor(direct_in[:5])) != 0).sum(1).max() <= 8


def test_it_trains_through_the_train_command_with_a_skip_connection(tmp_path, pairs, capsys):
    import numpy as np

    np.save(tmp_path / "pairs.npy", np.asarray(pairs[1]))
    args = ["train", "--model", "transcoder", "--dataset", str(tmp_path / "pairs.npy"),
            "--scale", "none", "--d-out", "32", "--skip", "--n-latents", "64", "--k", "8",
            "--epochs", "2", "--no-progress", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    model = sparseae.load(tmp_path / "run")
    assert isinstance(model, Transcoder) and model.config.skip and model.row_width == 80
    capsys.readouterr()


@pytest.mark.parametrize("method", ["mean", "geometric_median"])
def test_the_decoder_bias_init_fits_the_target_part_of_the_rows(pairs, method):
    """b_dec reconstructs the layer's output, so it is fitted on the rows' target part
    (it used to be fitted on the whole [input | output] row: a shape error)."""
    from sparseae.training.dictionary import geometric_median

    _, rows, _, direct_out = pairs
    torch.manual_seed(0)
    model = Transcoder(d_in=48, d_out=32, n_latents=64, sparsity_params={"k": 8})
    sparseae.fit(model, rows[:512], epochs=1, batch_size=128, b_dec_init=method)
    out = torch.as_tensor(direct_out[:512], dtype=torch.float32)
    model.train()
    fresh = Transcoder(d_in=48, d_out=32, n_latents=64, sparsity_params={"k": 8})
    from sparseae.training.dictionary import init_decoder_bias

    center = init_decoder_bias(fresh, torch.as_tensor(rows[:512]), method)
    expected = out.mean(0) if method == "mean" else geometric_median(out)
    torch.testing.assert_close(center, expected)
    torch.testing.assert_close(fresh.b_dec.detach(), expected)


@pytest.mark.parametrize(
    ("sparsity", "skip"), [("topk", False), ("topk", True), ("batchtopk", True)]
)
def test_sparse_step_matches_the_dense_objective(sparsity, skip):
    """The sparse-kernel step gives the loss and every gradient of the plain dense
    computation (code by the sparsity, decode, skip, MSE on the target half)."""
    torch.manual_seed(0)
    model = Transcoder(d_in=12, d_out=10, n_latents=40, sparsity=sparsity,
                       sparsity_params={"k": 5}, skip=skip)  # fmt: skip
    if skip:
        torch.nn.init.normal_(model.W_skip, std=0.1)
    model.train()
    assert model.uses_sparse_path
    rows = torch.randn(16, 22)
    out = model.step(rows)
    out.loss.backward()
    sparse_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    x_in, y = model.split(rows)
    dense = torch.nn.functional.mse_loss(model.decode(model.code(x_in), x_in), y)
    dense.backward()
    torch.testing.assert_close(out.loss, dense)
    for name, p in model.named_parameters():
        torch.testing.assert_close(sparse_grads[name], p.grad, msg=name)


@pytest.mark.parametrize("with_auxk", [False, True])
def test_the_hand_derived_step_trains_a_transcoder_as_autograd_does(with_auxk):
    import copy

    from sparseae.training.dictionary import AuxK, DeadLatents

    torch.manual_seed(0)
    m = sparseae.Transcoder(d_in=12, d_out=10, n_latents=48, sparsity_params={"k": 4})
    with torch.no_grad():
        m.W_dec.normal_()
        m.b_dec.normal_()
        m.b_enc.normal_(std=0.1)
    ref = copy.deepcopy(m)
    rows = torch.randn(33, 22)
    aux = None
    if with_auxk:
        dead = DeadLatents(48, dead_after=1)
        dead.since_fired[::2] = 5.0
        aux = AuxK(dead, k=6, weight=1 / 32)
    fused = m.fused_step()
    assert fused is not None
    out = fused.step(rows, aux) if aux is not None else fused.step(rows)
    want = ref.step(rows)
    if aux is not None:
        want = aux(ref, rows, want)
        torch.testing.assert_close(out.terms["aux"], want.terms["aux"].detach())
    want.loss.backward()
    torch.testing.assert_close(out.loss, want.loss.detach())
    torch.testing.assert_close(out.target, rows[:, 12:])
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name, atol=1e-6, rtol=1e-5)
    skip = sparseae.Transcoder(d_in=12, d_out=12, n_latents=48, skip=True)
    assert skip.fused_step() is None  # the skip connection trains through autograd
