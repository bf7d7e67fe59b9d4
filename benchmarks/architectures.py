"""Each SAE architecture against the peer's own implementation: held-out FVU against L0 at
three sparsity settings, on the same activations and token budget, with wall time per step.

Architectures and peers (dictionary_learning 0.1.0, its own trainer classes and losses,
``update(step, x)`` per batch): Matryoshka BatchTopK (``MatryoshkaBatchTopKTrainer``), the
decoder-norm-weighted L1 ReLU SAE (``StandardTrainerAprilUpdate``), the gated SAE
(``GatedSAETrainer``) and p-annealing of an Lp^p penalty towards p = 0.2
(``PAnnealTrainer``). The peers' warm-ups
(1,000 lr steps, 2,000 sparsity steps, BatchTopK's threshold from step 1,000) are tuned for
millions of tokens; here they are cut to a tenth of the run. Activations: the MNIST
classifier's ``act2`` (128 units, 55,000 training rows, the 10,000 test rows held out).

One command (the peer lives in its own venv, ``make peers``):

    make bench-architectures     # or: .peers/bin/python benchmarks/architectures.py

writes benchmarks/results/architectures.{md,json,png}. Transcoders run against sparsify's
``SparseCoder(transcode=True)`` on the classifier's ``fc2`` (its input and output from one
``extract_activations(pair=True)`` pass). Still to add: MiniLM token activations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_peer_checkpoints import shallow  # noqa: E402

import sparseae  # noqa: E402
from sparseae.data.activations import extract_activations  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
N, EPOCHS, BATCH = 1024, 3, 256


def fvu_l0(encode, decode, x: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        h = encode(x)
        x_hat = decode(h)
    sse = float((x - x_hat).pow(2).sum())
    sst = float((x - x.mean(0)).pow(2).sum())
    return sse / sst, float((h != 0).sum(1).float().mean())


def ours(arch: str, knob: float, x: torch.Tensor) -> tuple:
    torch.manual_seed(0)
    if arch == "matryoshka":
        model = sparseae.MatryoshkaSAE(
            d_in=x.shape[1], n_latents=N, widths=(64, 256), sparsity_params={"k": int(knob)}
        )
        cfg = sparseae.TrainConfig(epochs=EPOCHS, batch_size=BATCH)
    elif arch == "gated":
        model = sparseae.GatedSAE(d_in=x.shape[1], n_latents=N, weight=knob)
        cfg = sparseae.TrainConfig(epochs=EPOCHS, batch_size=BATCH)
    else:
        sparsity = "l1_decnorm" if arch == "l1" else "lp"
        params = {"weight": knob}
        if arch == "lp":  # Karvonen et al.: from L1 towards p = 0.2 over the run
            params.update(p=1.0, p_end=0.2, anneal_steps=EPOCHS * -(-len(x) // BATCH))
        model = sparseae.SAE(d_in=x.shape[1], n_latents=N, sparsity=sparsity,
                             sparsity_params=params)  # fmt: skip
        cfg = sparseae.TrainConfig(epochs=EPOCHS, batch_size=BATCH, unit_norm_decoder=False)
    t0 = time.perf_counter()
    trainer = sparseae.Trainer(model, cfg, progress=False)
    trainer.fit(x)
    seconds = time.perf_counter() - t0
    model.eval()
    return model.code, model.decode, seconds / trainer.global_step


def peer(arch: str, knob: float, x: torch.Tensor) -> tuple:
    steps = EPOCHS * -(-len(x) // BATCH)
    warm = max(1, steps // 10)
    common = dict(steps=steps, activation_dim=x.shape[1], dict_size=N, layer=0, lm_name="x",
                  seed=0, device="cpu", warmup_steps=warm)  # fmt: skip
    if arch == "matryoshka":
        mod = shallow("dictionary_learning.trainers", "matryoshka_batch_top_k")
        trainer = mod.MatryoshkaBatchTopKTrainer(
            k=int(knob),
            group_fractions=[64 / N, 192 / N, 768 / N],
            threshold_start_step=warm,
            **common,
        )
    elif arch == "gated":
        mod = shallow("dictionary_learning.trainers", "gdm")
        trainer = mod.GatedSAETrainer(l1_penalty=knob, sparsity_warmup_steps=warm, **common)
    elif arch == "lp":
        mod = shallow("dictionary_learning.trainers", "p_anneal")
        trainer = mod.PAnnealTrainer(initial_sparsity_penalty=knob, sparsity_warmup_steps=warm,
                                     sparsity_function="Lp^p", anneal_start=warm, p_end=0.2,
                                     **common)  # fmt: skip
    else:
        mod = shallow("dictionary_learning.trainers", "standard")
        trainer = mod.StandardTrainerAprilUpdate(l1_penalty=knob, sparsity_warmup_steps=warm,
                                                 **common)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    t0, step = time.perf_counter(), 0
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), BATCH):
            trainer.update(step, x[perm[i : i + BATCH]])
            step += 1
    seconds = time.perf_counter() - t0
    ae = trainer.ae.eval()
    return ae.encode, ae.decode, seconds / step


def transcoders(pairs_train: torch.Tensor, pairs_test: torch.Tensor) -> list[dict]:
    """sparseae's Transcoder against sparsify's SparseCoder(transcode=True) on the MNIST
    classifier's fc2 (a 128-128-wide classifier: sparsify's transcoders keep the width),
    k = 8, 16, 32: FVU of the predicted output."""
    from eval_vs_sparsify import sparsify_module

    sc = sparsify_module()
    d_in = d_out = pairs_train.shape[1] // 2
    x_in, y = pairs_test[:, :d_in], pairs_test[:, d_in:]
    rows = []
    for k in (8, 16, 32):
        torch.manual_seed(0)
        ours = sparseae.Transcoder(d_in=d_in, d_out=d_out, n_latents=N, sparsity_params={"k": k})
        t0 = time.perf_counter()
        trainer = sparseae.Trainer(ours, sparseae.TrainConfig(epochs=EPOCHS, batch_size=BATCH))
        trainer.fit(pairs_train)
        per_step = (time.perf_counter() - t0) / trainer.global_step
        ours.eval()
        rows.append(_transcoder_row("sparseae", k, ours, ours.code, x_in, y, per_step))
        torch.manual_seed(0)
        peer = sc.SparseCoder(d_in, sc.SparseCoderConfig(num_latents=N, k=k, transcode=True))
        opt = torch.optim.Adam(peer.parameters(), lr=2e-4 / (N / 2**14) ** 0.5)
        g, step, t0 = torch.Generator().manual_seed(0), 0, time.perf_counter()
        steps = EPOCHS * -(-len(pairs_train) // BATCH)
        for _ in range(EPOCHS):
            perm = torch.randperm(len(pairs_train), generator=g)
            for i in range(0, len(pairs_train), BATCH):
                b = pairs_train[perm[i : i + BATCH]]
                for group in opt.param_groups:  # sparsify's Adam warm-up, a tenth of the run
                    group["lr"] = 2e-4 / (N / 2**14) ** 0.5 * min(1.0, (step + 1) / (steps / 10))
                out = peer(b[:, :d_in], b[:, d_in:])
                opt.zero_grad(set_to_none=True)
                out.fvu.backward()
                opt.step()
                step += 1
        per_step = (time.perf_counter() - t0) / step

        def peer_predict(xb: torch.Tensor, peer=peer) -> torch.Tensor:
            enc = peer.encode(xb)
            return peer.decode(enc.top_acts, enc.top_indices)

        def peer_code(xb: torch.Tensor, peer=peer) -> torch.Tensor:
            enc = peer.encode(xb)
            return torch.zeros(len(xb), N).scatter_(-1, enc.top_indices, enc.top_acts)

        rows.append(_transcoder_row("sparsify", k, peer_predict, peer_code, x_in, y, per_step))
    return rows


def _transcoder_row(lib: str, k: int, predict, code, x_in, y, per_step: float) -> dict:
    with torch.no_grad():
        y_hat, h = predict(x_in), code(x_in)
    fvu = float((y - y_hat).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    l0 = float((h != 0).sum(1).float().mean())
    print(f"transcoder       {lib:20s} {k:<8g} FVU {fvu:.4f} L0 {l0:6.1f} "
          f"{1000 * per_step:.2f} ms/step", flush=True)  # fmt: skip
    return {"architecture": "transcoder", "library": lib, "knob": k, "fvu": fvu, "l0": l0,
            "ms_per_step": 1000 * per_step}  # fmt: skip


# knob grids chosen to span similar L0 ranges on these activations for each library
GRIDS = {
    "matryoshka": {"sparseae": [8, 16, 32], "dictionary_learning": [8, 16, 32]},
    "decoder-norm L1": {"sparseae": [3e-3, 1e-2, 3e-2], "dictionary_learning": [0.3, 1.0, 3.0]},
    "gated": {"sparseae": [3e-3, 1e-2, 3e-2], "dictionary_learning": [0.3, 1.0, 3.0]},
    "p-annealing": {"sparseae": [1e-3, 3e-3, 1e-2], "dictionary_learning": [0.1, 0.3, 1.0]},
}
KEYS = {"matryoshka": "matryoshka", "decoder-norm L1": "l1", "gated": "gated", "p-annealing": "lp"}


def run(x_train: torch.Tensor, x_test: torch.Tensor) -> list[dict]:
    rows = []
    for arch, grids in GRIDS.items():
        key = KEYS[arch]
        for lib, knobs in grids.items():
            for knob in knobs:
                train = ours if lib == "sparseae" else peer
                encode, decode, per_step = train(key, knob, x_train)
                fvu, l0 = fvu_l0(encode, decode, x_test)
                rows.append({"architecture": arch, "library": lib, "knob": knob, "fvu": fvu,
                             "l0": l0, "ms_per_step": 1000 * per_step})  # fmt: skip
                print(f"{arch:16s} {lib:20s} {knob:<8g} FVU {fvu:.4f} L0 {l0:6.1f} "
                      f"{1000 * per_step:.2f} ms/step", flush=True)  # fmt: skip
    return rows


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.6), dpi=100)
    for ax, arch in zip(np.atleast_1d(axes), archs, strict=True):
        peers = sorted({r["library"] for r in rows if r["architecture"] == arch} - {"sparseae"})
        for lib, style in (("sparseae", "o-"), *((p, "s--") for p in peers)):
            pts = sorted((r["l0"], r["fvu"]) for r in rows
                         if r["architecture"] == arch and r["library"] == lib)  # fmt: skip
            ax.plot(*zip(*pts, strict=True), style, label=lib)
        ax.set(title=arch, xlabel="L0 (held-out)", ylabel="FVU (held-out)", xscale="log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true", help="10,000 rows, 1 epoch: a smoke run")
    args = ap.parse_args(argv)
    global EPOCHS
    if args.quick:
        EPOCHS = 1
    from sparseae.apps.classifier import train_classifier
    from sparseae.data import find_shared_data_dir, load_dataset

    data = load_dataset("mnist", data_dir=args.data_dir or find_shared_data_dir(), download=False)
    clf = train_classifier(data.train.x, data.train.y, epochs=2, seed=0)
    rows_used = 10_000 if args.quick else len(data.train)
    x_train = torch.as_tensor(extract_activations(clf, "act2", data.train.x[:rows_used]).x)
    x_test = torch.as_tensor(extract_activations(clf, "act2", data.test.x).x)
    rows = run(x_train, x_test)
    pairs_train = torch.as_tensor(
        extract_activations(clf, "fc2", data.train.x[:rows_used], pair=True).x
    )
    pairs_test = torch.as_tensor(extract_activations(clf, "fc2", data.test.x, pair=True).x)
    rows += transcoders(torch.as_tensor(pairs_train), torch.as_tensor(pairs_test))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "architectures_quick" if args.quick else "architectures"
    figure(rows, RESULTS / f"{stem}.png")
    lines = ["# SAE architectures against the peers' own implementations", "",
             f"Command: `python benchmarks/architectures.py`; MNIST classifier act2 (128 units), "
             f"{len(x_train)} training rows, {len(x_test)} held-out; {N} latents, {EPOCHS} epochs "
             f"of batch {BATCH}, same order of batches for both; torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads. Figure: `architectures.png`.", "",
             "| architecture | library | knob | held-out FVU | L0 | ms / step |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    lines += [f"| {r['architecture']} | {r['library']} | {r['knob']:g} | {r['fvu']:.4f} | "
              f"{r['l0']:.1f} | {r['ms_per_step']:.2f} |" for r in rows]  # fmt: skip
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
