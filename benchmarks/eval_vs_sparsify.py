"""TopK dictionaries trained by sparseae and by EleutherAI's sparsify on the same activations,
both loaded into sparseae and evaluated the same way: FVU, L0, dead latents, the downstream
loss recovered with the SAE spliced into the network, wall and CPU seconds.

Two activation sets the project uses offline: the MNIST classifier's hidden layer ``act2``
(loss: cross-entropy and accuracy) and MiniLM's ``encoder.layer.3`` token activations (loss:
1 - cosine of the sentence embedding to the clean one). Same d_in, latents, k, token budget
and batch for both libraries; each uses its own SAE module and loss (sparsify: its
``SparseCoder`` forward, FVU loss, decoder kept at unit norm with the parallel gradient
removed, Adam at its default learning rate 2e-4 / sqrt(latents / 2^14) with its 1000-step
warm-up shortened to a tenth of the run where that is less, b_dec at the first batch's
mean as its trainer does; sparseae: its defaults, lr 1e-3). Both in one process, each
repeat in alternating order.

One command (sparsify lives in its own venv: ``make peers``):

    make bench-eval-sparsify        # or: .peers/bin/python benchmarks/eval_vs_sparsify.py

writes benchmarks/results/eval_vs_sparsify.{md,json}; ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import logging
import resource
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import sparseae  # noqa: E402
from sparseae.apps.sae_eval import (  # noqa: E402
    accuracy_error,
    cross_entropy,
    evaluate_dictionary,
    splice_eval,
)
from sparseae.data.activations import extract_activations  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def sparsify_module():
    """sparsify's SparseCoder without its package __init__ (which imports a training stack)."""
    if "sparsify" not in sys.modules:
        pkg = types.ModuleType("sparsify")
        dist = importlib.metadata.distribution("eai-sparsify")
        pkg.__path__ = [str(Path(dist.locate_file("")) / "sparsify")]
        pkg.__version__ = dist.version
        pkg.logger = logging.getLogger("sparsify")
        sys.modules["sparsify"] = pkg
    return importlib.import_module("sparsify.sparse_coder")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Sparsify:
    """sparsify's SparseCoder trained by its own loss and decoder rules, one epoch a call."""

    def __init__(self, d_in: int, n: int, k: int, seed: int) -> None:
        sc = sparsify_module()
        torch.manual_seed(seed)
        self.sae = sc.SparseCoder(d_in, sc.SparseCoderConfig(num_latents=n, k=k))
        self.lr = 2e-4 / (n / 2**14) ** 0.5
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=self.lr)
        self.step = 0

    def epoch(self, x: torch.Tensor, batch: int, seed: int, warmup: int) -> None:
        if self.step == 0:  # as sparsify's trainer: b_dec at the first batch's mean
            with torch.no_grad():
                self.sae.b_dec.copy_(x[:batch].mean(0))
            self.sae.set_decoder_norm_to_unit_norm()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        for i in range(0, len(x), batch):
            xb = x[perm[i : i + batch]]
            for g in self.opt.param_groups:  # sparsify's linear warm-up for Adam
                g["lr"] = self.lr * min(1.0, (self.step + 1) / warmup)
            out = self.sae(xb)
            self.opt.zero_grad(set_to_none=True)
            out.fvu.backward()
            self.sae.remove_gradient_parallel_to_decoder_directions()
            self.opt.step()
            self.sae.set_decoder_norm_to_unit_norm()
            self.step += 1

    def as_sparseae(self, folder: Path):
        self.sae.save_to_disk(folder)
        return sparseae.load(folder)  # read through sparseae's own sparsify loader


def train_ours(x: torch.Tensor, n: int, k: int, epochs: int, batch: int, seed: int):
    torch.manual_seed(seed)
    model = sparseae.SAE(d_in=x.shape[1], n_latents=n, sparsity="topk", sparsity_params={"k": k})
    sparseae.fit(model, x, epochs=epochs, batch_size=batch, seed=seed, progress=False)
    return model.eval()


def train_peer(x: torch.Tensor, n: int, k: int, epochs: int, batch: int, seed: int, tmp: Path):
    peer = Sparsify(x.shape[1], n, k, seed)
    # sparsify warms Adam up over 1000 steps, tuned for billions of tokens; here, where the
    # whole run may be fewer steps, over the same 1000 or a tenth of the run, whichever is less
    warmup = max(1, min(1000, epochs * -(-len(x) // batch) // 10))
    for epoch in range(epochs):
        peer.epoch(x, batch, seed * 1000 + epoch, warmup)
    return peer.as_sparseae(tmp / f"sparsify-{seed}")


def timed(fn, *args):
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = fn(*args)
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def compare(task: dict, args: argparse.Namespace, tmp: Path) -> list[dict]:
    """Both libraries on one activation set, ``args.repeats`` times in alternating order."""
    x, n, k = task["train"], task["n"], task["k"]
    rows = []
    for rep in range(args.repeats):
        order = ["sparseae", "sparsify"] if rep % 2 == 0 else ["sparsify", "sparseae"]
        for lib in order:
            if lib == "sparseae":
                model, wall, cpu = timed(train_ours, x, n, k, args.epochs, args.batch, rep)
            else:
                model, wall, cpu = timed(train_peer, x, n, k, args.epochs, args.batch, rep, tmp)
            stats = evaluate_dictionary(model, task["test"])
            spliced = splice_eval(task["net"], task["layer"], task["batches"], model, task["loss"])
            rows.append({"task": task["name"], "library": lib, "repeat": rep, "wall_s": wall,
                         "cpu_s": cpu, "fvu": stats["fvu"], "l0": stats["l0"],
                         "dead": stats["dead_latents"], "rows": stats["rows"],
                         "loss_clean": spliced["clean"], "loss_spliced": spliced["spliced"],
                         "recovered_vs_mean": spliced["recovered_vs_mean"],
                         "recovered_vs_zero": spliced["recovered_vs_zero"]})  # fmt: skip
            print(f"{task['name']} {lib} rep {rep}: {wall:.1f}s wall, FVU {stats['fvu']:.4f}, "
                  f"recovered {spliced['recovered_vs_mean']:.3f}", flush=True)  # fmt: skip
    return rows


def mnist_task(args: argparse.Namespace) -> dict:
    from sparseae.apps.classifier import train_classifier
    from sparseae.data import find_shared_data_dir, load_dataset

    data = load_dataset("mnist", data_dir=args.data_dir or find_shared_data_dir(), download=False)
    limit = 10_000 if args.quick else len(data.train)
    clf = train_classifier(data.train.x[:limit], data.train.y[:limit], epochs=2, seed=0)
    batches = [
        (data.test.x[i : i + 1000], data.test.y[i : i + 1000]) for i in range(0, 10_000, 1000)
    ]
    return {"name": "MNIST classifier act2 (cross-entropy)", "net": clf, "layer": "act2",
            "train": torch.as_tensor(extract_activations(clf, "act2", data.train.x[:limit]).x),
            "test": extract_activations(clf, "act2", data.test.x).x, "batches": batches,
            "loss": cross_entropy, "n": 1024, "k": 16, "extra_loss": accuracy_error}  # fmt: skip


def minilm_task(args: argparse.Namespace) -> dict:
    from sparseae.apps.text import load_minilm, sentence_embedding_loss, stdlib_sentences

    model, tokenizer = load_minilm()
    sentences = stdlib_sentences(600 if args.quick else 4000, seed=0)
    split = int(0.9 * len(sentences))

    def tok(items: list[str]) -> list[dict]:
        return [dict(tokenizer(items[i : i + 64], padding=True, truncation=True, max_length=128,
                               return_tensors="pt", return_special_tokens_mask=True))
                for i in range(0, len(items), 64)]  # fmt: skip

    train, test = tok(sentences[:split]), tok(sentences[split:])
    layer = "encoder.layer.3"
    return {"name": "MiniLM encoder.layer.3 tokens (1 - cos of sentence embedding)",
            "net": model, "layer": layer,
            "train": torch.as_tensor(extract_activations(model, layer, train).x),
            "test": extract_activations(model, layer, test).x, "batches": test,
            "loss": sentence_embedding_loss, "n": 3072, "k": 32}  # fmt: skip


def render(rows: list[dict], meta: dict) -> str:
    lines = [
        "# TopK SAEs by sparseae and by sparsify, evaluated the same way",
        "",
        f"Command: `{meta['command']}`; {meta['epochs']} epochs, batch {meta['batch']}, "
        f"{meta['repeats']} repeats each in alternating order, same process; torch "
        f"{meta['torch']}, {meta['threads']} threads; sparsify {meta['sparsify']}. Medians over "
        "repeats, ranges in brackets. FVU and L0 on held-out rows; 'recovered' is the fraction of "
        "the downstream loss recovered against mean ablation, `(L_mean - L_spliced) / "
        "(L_mean - L_clean)`.",
        "",
        "| activations | library | latents | k | train rows | wall s | CPU s | FVU | L0 | dead "
        "| recovered (mean abl.) | recovered (zero abl.) |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | --- | --- |",
    ]
    for (task, lib), group in _groups(rows).items():

        def cell(key: str, fmt: str = ".3f", group: list = group) -> str:
            vals = sorted(r[key] for r in group)
            med = float(np.median(vals))
            return f"{med:{fmt}}" + (
                f" [{vals[0]:{fmt}}-{vals[-1]:{fmt}}]" if len(vals) > 1 else ""
            )

        first = group[0]
        lines.append(f"| {task} | {lib} | {first['n']} | {first['k']} | {first['train_rows']} | "
                     f"{cell('wall_s', '.1f')} | {cell('cpu_s', '.1f')} | {cell('fvu', '.4f')} | "
                     f"{cell('l0', '.1f')} | {cell('dead', '.0f')} | {cell('recovered_vs_mean')} | "
                     f"{cell('recovered_vs_zero')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _groups(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault((r["task"], r["library"]), []).append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows and epochs: a smoke run")
    ap.add_argument("--epochs", type=int, default=None, help="default 3 (quick: 1)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tasks", default="mnist,minilm")
    args = ap.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else 3)
    builders = {"mnist": mnist_task, "minilm": minilm_task}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            task = builders[name](args)
            for r in compare(task, args, Path(tmp)):
                r.update(n=task["n"], k=task["k"], train_rows=len(task["train"]))
                rows.append(r)
    meta = {"command": "python benchmarks/eval_vs_sparsify.py" + (" --quick" if args.quick else ""),
            "epochs": args.epochs, "batch": args.batch, "repeats": args.repeats,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "sparsify": importlib.metadata.version("eai-sparsify")}  # fmt: skip
    table = render(rows, meta)
    stem = "eval_vs_sparsify" + ("_quick" if args.quick else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(table)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
