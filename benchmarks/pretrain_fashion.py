"""Unsupervised pretraining with few labels (document 003's recipe), Fashion-MNIST, N = 500:
pretrain the stacked encoder 784-100-30 (gelu) on all 55,000 unlabelled training images,
then a softmax head on 500 labelled images with the encoder frozen, then unfrozen
(fine-tuned), against the same classifier trained from scratch on the same 500 labels.
Validation accuracy on the 5,000 validation images, several seeds (mean ± std), for plain,
KL-sparse and TopK-sparse pretraining.

One command: ``python benchmarks/pretrain_fashion.py`` (``--quick``: 1 seed, short).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from _common import md_table, write_results
from torch import nn

import sparseae
from sparseae.data import find_shared_data_dir, load_dataset

PUBLISHED = {"scratch": 0.775, "frozen": 0.725, "fine-tuned": 0.781}


def pretrained(kind: str, x: np.ndarray, epochs: int, seed: int) -> sparseae.Autoencoder:
    torch.manual_seed(seed)
    extra = {
        "plain": dict(code_activation="gelu"),
        "kl": dict(
            code_activation="sigmoid",
            sparsity="kl",
            sparsity_params={"rho": 0.1, "weight": 0.05 / 32},
        ),
        "topk": dict(code_activation="linear", sparsity="topk", sparsity_params={"k": 8}),
    }[kind]
    model = sparseae.Autoencoder(
        d_in=784, hidden=[100], n_latents=30, activation="gelu", loss="bce", **extra
    )
    sparseae.fit(model, x, epochs=epochs, batch_size=32, seed=seed, progress=False)
    return model


class Classifier(nn.Module):
    """Encoder layers (as an Autoencoder's encode) + a softmax head."""

    def __init__(self, encoder: sparseae.Autoencoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.n_latents, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.encoder.sparsity.train(False)  # a fixed code at classification time
        return self.head(self.encoder.encode(x))


def train_classifier(
    clf: Classifier, x, y, epochs: int, train_encoder: bool, seed: int, lr: float = 1e-3
) -> None:
    torch.manual_seed(seed)
    params = list(clf.head.parameters())
    if train_encoder:
        params += list(clf.encoder.parameters())
    for p in clf.encoder.parameters():
        p.requires_grad_(train_encoder)
    opt = torch.optim.Adam(params, lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 32):
            idx = perm[i : i + 32]
            loss = nn.functional.cross_entropy(clf(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def accuracy(clf: Classifier, x, y) -> float:
    return float((clf(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--labels", type=int, default=500)
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--head-epochs", type=int, default=40)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    pre_epochs = 1 if args.quick else args.pretrain_epochs
    head_epochs = 5 if args.quick else args.head_epochs
    data = load_dataset("fashion-mnist", data_dir=args.data_dir or find_shared_data_dir())
    xtr, ytr, xva, yva = data.train.x, data.train.y, data.val.x, data.val.y
    acc: dict[str, list[float]] = {}
    t_start = time.perf_counter()
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(xtr), size=args.labels, replace=False)
        xl, yl = xtr[idx], ytr[idx]
        torch.manual_seed(seed)
        scratch = Classifier(
            sparseae.Autoencoder(
                d_in=784, hidden=[100], n_latents=30, activation="gelu", code_activation="gelu"
            )
        )
        train_classifier(scratch, xl, yl, head_epochs, True, seed)
        acc.setdefault("scratch", []).append(accuracy(scratch, xva, yva))
        for kind in ("plain", "kl", "topk"):
            enc = pretrained(kind, xtr, pre_epochs, seed)
            clf = Classifier(enc)
            train_classifier(clf, xl, yl, head_epochs, False, seed)
            acc.setdefault(f"{kind} frozen", []).append(accuracy(clf, xva, yva))
            train_classifier(clf, xl, yl, head_epochs, True, seed, lr=3e-4)
            acc.setdefault(f"{kind} fine-tuned", []).append(accuracy(clf, xva, yva))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in acc.items()), flush=True)
    rows = []
    for k, v in acc.items():
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        pub = PUBLISHED.get(k.replace("plain ", ""), "")
        rows.append(
            {
                "setting": k,
                "val accuracy": f"{statistics.mean(v):.3f} ± {sd:.3f}",
                "document 003 (single run)": pub,
            }
        )
    text = (
        "# Unsupervised pretraining with 500 labels, Fashion-MNIST\n\n"
        f"Command: `python benchmarks/pretrain_fashion.py{' --quick' if args.quick else ''}`;"
        f" {seeds} seed(s) (each draws its own 500 labels); encoder 784-100-30 gelu "
        f"pretrained {pre_epochs} epochs (batch 32, BCE) on the 55,000 training images; head "
        f"trained {head_epochs} epochs (batch 32, Adam 1e-3), fine-tuning another "
        f"{head_epochs} epochs at lr 3e-4; validation accuracy on the 5,000 validation images;"
        f" {time.perf_counter() - t_start:.0f} s in all. KL: sigmoid code, rho 0.1, weight "
        "0.05/32; TopK: linear code, k = 8 of 30.\n\n"
        + md_table(rows, ["setting", "val accuracy", "document 003 (single run)"])
    )
    print(text)
    write_results("pretrain_fashion", text, {"accuracies": acc}, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
