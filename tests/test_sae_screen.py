"""The bf16-screened TopK support (`models.sae.screen`): it picks the fp32 product's
support with the fp32 values, falls back to fp32 for the rows its check cannot confirm, and
trains an SAE as the fp32 step does."""

from __future__ import annotations

import pytest
import torch

import sparseae
from sparseae.errors import ConfigError
from sparseae.models.sae import SAE
from sparseae.models.sae.screen import TopKScreen
from sparseae.sparsities.selection import topk_indices
from tests.helpers import digits


def _trained_sae(n: int = 256, k: int = 8) -> tuple[SAE, torch.Tensor]:
    """An SAE trained briefly on digits, so its pre-activations are a real model's."""
    x, _ = digits()
    torch.manual_seed(0)
    model = SAE(d_in=64, n_latents=n, sparsity="topk", sparsity_params={"k": k})
    sparseae.Trainer(model, sparseae.TrainConfig(epochs=2, batch_size=128), progress=False).fit(x)
    return model, x


def _screen(model: SAE, x: torch.Tensor, screen: TopKScreen, k: int):
    xc = x - model.b_dec.detach()
    out = torch.empty(x.shape[0], model.n_latents)
    rows, cols = screen(xc, model.W_enc.detach(), model.b_enc.detach(), k, out)
    exact = torch.addmm(model.b_enc.detach(), xc, model.W_enc.detach())
    return rows, cols.view(x.shape[0], k), out, exact


@pytest.mark.parametrize("margin", [32, 0])
def test_the_screen_picks_the_fp32_support_with_fp32_values(margin):
    model, x = _trained_sae()
    screen = TopKScreen(margin=margin)
    rows, cols, out, exact = _screen(model, x, screen, 8)
    ref = topk_indices(exact, 8)
    assert torch.equal(cols.sort(1).values, ref.sort(1).values)
    torch.testing.assert_close(out[rows, cols.reshape(-1)], exact[rows, cols.reshape(-1)])
    assert screen.checked_rows == len(x)
    if margin == 0:  # no room between the k-th value and the left-out ones: every row that
        # the check cannot confirm is redone in fp32, and the support is still exact
        assert screen.recomputed_rows > len(x) // 2
    else:
        assert screen.recomputed_rows < len(x) // 100


def test_a_coarser_screened_product_makes_the_check_redo_rows_and_stay_exact():
    """Screened values with errors of the size of the gaps between ranked values (as a
    coarser product would give): the check measures them on the candidates, redoes the
    rows it cannot confirm in fp32, and the support stays the fp32 one."""
    model, x = _trained_sae()
    screen, real = TopKScreen(), TopKScreen._screened
    gen = torch.Generator().manual_seed(0)

    def coarse(self, xc, w_enc, b_enc, out):
        real(self, xc, w_enc, b_enc, out)
        out.add_(torch.rand(out.shape, generator=gen).sub_(0.5).mul_(2 * out.std()))

    screen._screened = coarse.__get__(screen)
    rows, cols, out, exact = _screen(model, x, screen, 8)
    assert screen.recomputed_rows > len(x) // 10
    assert torch.equal(cols.sort(1).values, topk_indices(exact, 8).sort(1).values)


def test_an_sae_trains_with_the_screen_as_with_fp32():
    x, _ = digits()
    params, losses = {}, {}
    for screen in (False, True):
        torch.manual_seed(0)
        model = SAE(d_in=64, n_latents=256, sparsity="topk", sparsity_params={"k": 8},
                    bf16_screen=screen)  # fmt: skip
        history = sparseae.Trainer(
            model, sparseae.TrainConfig(epochs=3, batch_size=128), progress=False
        ).fit(x)
        params[screen] = [p.detach().clone() for p in model.parameters()]
        losses[screen] = [r["loss"] for r in history.records]
        assert (model.screen is not None) is screen
    assert losses[True][-1] < 0.8 * losses[True][0]
    for a, b in zip(params[False], params[True], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # the saved config keeps the choice
    assert SAE(**{**model.config.to_dict()}).screen is not None


def test_the_screen_is_refused_where_it_does_not_apply():
    with pytest.raises(ConfigError, match="topk sparsity"):
        SAE(d_in=8, n_latents=32, sparsity="batchtopk", bf16_screen=True)
    with pytest.raises(ConfigError, match="exclude each other"):
        SAE(d_in=8, n_latents=32, bf16=True, bf16_screen=True)


def test_the_train_command_takes_bf16_screen(tmp_path, capsys):
    from tests.test_cli import run_cli

    base = ["train", "--model", "sae", "--dataset", "digits", "--n-latents", "64", "--k", "4",
            "--epochs", "2", "--no-progress"]  # fmt: skip
    code, _, err = run_cli(capsys, *base, "--bf16-screen", "--out", str(tmp_path / "r"))
    assert code == 0, err
    model = sparseae.load(tmp_path / "r")
    assert model.config.bf16_screen and model.screen is not None
    for extra, fragment in (
        (["--sparsity", "batchtopk"], "bf16_screen applies to the topk sparsity"),
        (["--model", "gated-sae", "--weight", "0.01"], "--bf16-screen applies to --model sae"),
    ):
        argv = [*base, "--bf16-screen", *extra, "--out", str(tmp_path / "bad")]
        code, _, err = run_cli(capsys, *argv)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and fragment in lines[0], err


def test_auxk_dead_block_runs_in_bf16_under_the_screen_and_trains_as_fp32(monkeypatch):
    """With AuxK, the dead latents' dense block products run in bf16 under the screen (its
    largest fp32 work left); the run still follows the fp32 one to bf16's rounding."""
    from sparseae.models.sae import entries

    x, _ = digits()
    seen: list[torch.dtype] = []
    real = entries.BlockEntries.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.append(self.dtype)

    monkeypatch.setattr(entries.BlockEntries, "__init__", spy)
    params, aux = {}, {}
    for screen in (False, True):
        seen.clear()
        torch.manual_seed(0)
        model = SAE(d_in=64, n_latents=256, sparsity="topk", sparsity_params={"k": 4},
                    bf16_screen=screen)  # fmt: skip
        config = sparseae.TrainConfig(epochs=3, batch_size=128, dead_after=256, aux_k=32)
        history = sparseae.Trainer(model, config, progress=False).fit(x)
        aux[screen] = [r["aux"] for r in history.records if r.get("aux")]
        params[screen] = [p.detach().clone() for p in model.parameters()]
        assert seen and set(seen) == {torch.bfloat16 if screen else torch.float32}
    assert aux[True] and aux[True][-1] < aux[True][0]
    torch.testing.assert_close(aux[True], aux[False], rtol=2e-2, atol=0)
    for a, b in zip(params[False], params[True], strict=True):  # Adam's steps amplify
        # rounding on a few near-zero gradients: compare whole parameters
        assert (a - b).norm() <= 3e-2 * b.norm()  # seen: at most 0.8e-2 (b_enc)
