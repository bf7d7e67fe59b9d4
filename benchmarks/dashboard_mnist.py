"""A TopK dictionary of an MNIST classifier's hidden layer, streamed from disk, with its
latent dashboard.

One command: ``python benchmarks/dashboard_mnist.py`` (``--quick``: fewer rows and epochs).

1. sparseae trains a 784-256-128-10 MLP classifier on MNIST (2 epochs).
2. `extract_activations` hooks its ``act2`` layer (128 ReLU units) and writes the 55,000
   training images' activations to a shard folder (`ShardWriter`), the test set's to memory.
3. A TopK dictionary SAE (`sparseae.SAE`: 128 -> 256 latents, k=8, unit-norm atoms, b_dec at
   the geometric median, MSE, Adam 3e-3) trains by streaming
   the shards (`StreamSource` through the trainer); the same SAE trained from the array in
   memory is the speed peer (ratio = streaming / in-memory seconds).
4. Quality on the test activations against PCA with as many components as active latents
   (k): fraction of variance unexplained, and the classifier's accuracy when its layer is
   replaced by the reconstruction ("spliced" accuracy; mean-ablation is the floor).
5. The dashboard: the most frequent and some random live latents, with the top-activating
   test digits and activation histograms -> benchmarks/results/dashboard_mnist.html.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sparseae
from sparseae.apps.classifier import accuracy, accuracy_with_layer_replaced, train_classifier
from sparseae.data import find_shared_data_dir, load_dataset
from sparseae.data.activations import extract_activations
from sparseae.data.shards import ShardDataset, ShardWriter
from sparseae.report import dashboard
from sparseae.training.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results"
LAYER = "act2"


def load_mnist(data_dir: str | None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test), pixels in [0, 1]; the 55,000/10,000 split."""
    data = load_dataset("mnist", data_dir=data_dir or find_shared_data_dir(), download=False)
    return data.train.x, data.train.y, data.test.x, data.test.y


def make_sae(n_latents: int, k: int, seed: int) -> sparseae.SAE:
    """The dictionary SAE with its defaults: encoder initialised as the decoder's transpose
    (Gao et al. 2024), unit-norm atoms and b_dec at the geometric median (the trainer's)."""
    torch.manual_seed(seed)
    return sparseae.SAE(d_in=128, n_latents=n_latents, sparsity="topk", sparsity_params={"k": k})


@torch.no_grad()
def fvu(recon: np.ndarray, x: np.ndarray) -> float:
    """Fraction of variance unexplained: 1 - R^2 over all coordinates."""
    return float(((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 rows, 2 SAE epochs")
    ap.add_argument("--epochs", type=int, default=8, help="SAE epochs (default 8)")
    ap.add_argument("--n-latents", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--dead-after", type=int, default=20_000, help="samples before a latent is dead (0: off)"
    )
    ap.add_argument("--aux-k", type=int, default=64, help="AuxK latents on the dead ones")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    xtr, ytr, xte, yte = load_mnist(args.data_dir)
    if args.quick:
        xtr, ytr = xtr[:10_000], ytr[:10_000]
    t0 = time.perf_counter()
    clf = train_classifier(xtr, ytr, epochs=2, seed=args.seed)
    clf_seconds = time.perf_counter() - t0
    clf_acc = accuracy(clf, xte, yte)
    print(f"classifier: test accuracy {clf_acc:.4f} ({clf_seconds:.1f}s)")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        writer = ShardWriter(
            Path(tmp) / "acts",
            d_in=128,
            rows_per_shard=8192,
            metadata={"name": "mnist-mlp-act2", "layer": LAYER, "model": "MLPClassifier"},
        )
        shards = extract_activations(clf, LAYER, xtr, out=writer, batch_size=1024)
        extract_seconds = time.perf_counter() - t0
        test_acts = extract_activations(clf, LAYER, xte, batch_size=1024).x
        print(f"extracted {len(shards)} training rows to {shards.folder} ({extract_seconds:.1f}s)")

        cfg = sparseae.TrainConfig(
            epochs=epochs,
            batch_size=args.batch_size,
            lr=3e-3,
            seed=args.seed,
            device="cpu",
            dead_after=args.dead_after,
            aux_k=args.aux_k if args.dead_after else 0,
        )
        runs = {}
        for name, train_data in (("stream", str(shards.folder)), ("memory", None)):
            if train_data is None:
                train_data = ShardDataset(shards.folder).to_numpy()
            model = make_sae(args.n_latents, args.k, args.seed)
            t0 = time.perf_counter()
            history = Trainer(model, cfg, progress=False).fit(train_data, test_acts)
            runs[name] = (model, time.perf_counter() - t0, history)
            print(
                f"SAE from {name}: {runs[name][1]:.1f}s, val recon {history['val_recon'][-1]:.4f}"
            )
    sae, stream_seconds, history = runs["stream"]
    memory_seconds = runs["memory"][1]

    # quality against PCA with k components (the same number of numbers per input)
    xt = torch.from_numpy(test_acts)
    with torch.no_grad():
        sae_recon = sae(xt).numpy()
        codes = sae.encode(xt)
    from sklearn.decomposition import PCA

    train_rows = runs["memory"][0]  # noqa: F841 - keep the peer alive until here
    pca = PCA(n_components=args.k, random_state=args.seed).fit(
        extract_activations(clf, LAYER, xtr[:20_000], batch_size=2048).x
    )
    pca_recon = pca.inverse_transform(pca.transform(test_acts)).astype(np.float32)
    mean = torch.from_numpy(test_acts.mean(0))

    def splice(fn):
        return accuracy_with_layer_replaced(clf, LAYER, xte, yte, fn)

    acc_sae = splice(lambda h: sae(h))
    acc_pca = splice(lambda h: torch.from_numpy(pca.inverse_transform(pca.transform(h.numpy()))))
    acc_mean = splice(lambda h: mean.expand_as(h))
    freq = (codes != 0).float().mean(0).numpy()
    rows = [
        {"method": f"TopK SAE ({args.n_latents} latents, k={args.k})",
         "fvu": fvu(sae_recon, test_acts),
         "spliced_accuracy": acc_sae, "l0": float((codes != 0).sum(1).float().mean()),
         "dead_latents": int((freq == 0).sum())},
        {"method": f"PCA ({args.k} components)", "fvu": fvu(pca_recon, test_acts),
         "spliced_accuracy": acc_pca, "l0": float(args.k), "dead_latents": 0},
        {"method": "mean ablation", "fvu": 1.0, "spliced_accuracy": acc_mean, "l0": 0.0,
         "dead_latents": 0},
    ]  # fmt: skip

    # the dashboard
    latents = dashboard.choose_latents(freq, n_frequent=4, n_random=8, seed=args.seed)
    cols = dashboard.latent_columns(sae, test_acts, latents)
    cards = [
        dashboard.image_latent_card(lat, cols[:, i], xte, (28, 28), top_k=16)
        for i, lat in enumerate(latents)
    ]
    table = "".join(
        f"<tr><td style='text-align:left'>{r['method']}</td><td>{r['fvu']:.4f}</td>"
        f"<td>{r['spliced_accuracy']:.4f}</td><td>{r['l0']:.1f}</td><td>{r['dead_latents']}</td></tr>"
        for r in rows
    )
    intro = (
        f"<p>Layer <code>{LAYER}</code> (128 ReLU units) of an MLP classifier "
        f"(test accuracy {clf_acc:.4f}) trained by sparseae on MNIST; a TopK SAE with "
        f"{args.n_latents} latents and k={args.k} trained for {epochs} epochs on the "
        f"{len(shards)} training images' activations streamed from .npy shards. Below: the 4 most "
        "frequently firing latents, then 8 random live ones; for each, the 16 test digits that "
        "activate it most and the histogram of its non-zero activations over the 10,000 test "
        "digits.</p><table><tr><th>method</th><th>FVU</th><th>spliced accuracy</th><th>L0</th>"
        f"<th>dead latents</th></tr>{table}</table>"
    )
    from sparseae.apps.sae_eval import cross_entropy, evaluate_dictionary, splice_eval

    evaluation = evaluate_dictionary(sae, test_acts)
    batches = [(xte[i : i + 1000], yte[i : i + 1000]) for i in range(0, len(xte), 1000)]
    evaluation.update(splice_eval(clf, LAYER, batches, sae, cross_entropy))
    panel = dashboard.evaluation_panel(evaluation, "evaluation on the 10,000 test digits")
    page = dashboard.write_page(
        out / "dashboard_mnist.html", "MNIST classifier latents", [panel, *cards], intro
    )

    result = {
        "classifier_test_accuracy": clf_acc,
        "classifier_seconds": clf_seconds,
        "extract_seconds": extract_seconds,
        "train_rows": len(shards),
        "sae_epochs": epochs,
        "sae_seconds_streaming": stream_seconds,
        "sae_seconds_in_memory": memory_seconds,
        "streaming_over_memory": stream_seconds / memory_seconds,
        "quality": rows,
        "evaluation": {k: v for k, v in evaluation.items() if k != "firing"},
        "latents_shown": latents,
        "history": history.records,
        "quick": args.quick,
    }
    suffix = "_quick" if args.quick else ""
    (out / f"dashboard_mnist{suffix}.json").write_text(json.dumps(result, indent=1))
    md = [
        "# MNIST classifier activations: TopK SAE and dashboard",
        "",
        f"Command: `.venv/bin/python benchmarks/dashboard_mnist.py{suffix.replace('_', ' --')}`"
        f" — classifier test accuracy {clf_acc:.4f}; {len(shards)} activation rows of layer "
        f"`{LAYER}` streamed from shards; {epochs} SAE epochs. Dashboard: `{page.name}`.",
        "",
        "| method | FVU (test) | spliced accuracy | L0 | dead latents |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {r['method']} | {r['fvu']:.4f} | {r['spliced_accuracy']:.4f} | {r['l0']:.1f} | "
            f"{r['dead_latents']} |"
            for r in rows
        ),
        "",
        "| SAE training | seconds | ratio |",
        "| --- | ---: | ---: |",
        f"| in memory (peer) | {memory_seconds:.1f} | 1.00 |",
        f"| streamed from .npy shards | {stream_seconds:.1f} | "
        f"{stream_seconds / memory_seconds:.2f} |",
        "",
    ]  # fmt: skip
    (out / f"dashboard_mnist{suffix}.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"wrote {page} ({page.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
