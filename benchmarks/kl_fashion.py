"""Document 003's KL sparse autoencoder and stacked autoencoder on Fashion-MNIST.

One command: ``python benchmarks/kl_fashion.py`` (``--quick`` for a 2-epoch smoke run).

For each recipe it trains sparseae's model exactly as published (784-100(gelu)-300(sigmoid,
KL rho=0.1)-100(gelu)-784(sigmoid), BCE, Adam 1e-3, batch 32, 10 epochs, 55,000/5,000 split;
and the stacked 784-100-30-100-784 gelu AE) and, in the same process, a straightforward
PyTorch loop of the same model (``DataLoader(TensorDataset, shuffle=True)``, ``nn.Sequential``,
``nn.BCELoss``, ``torch.optim.Adam``), and prints validation BCE next to the document's, seconds
per epoch and the speed ratio. It also shows the Keras penalty-scale trap (the document's KL
weight 0.05 used undivided) and searches a few faster settings for the shortest wall time to
reach the document's validation BCE 0.2691 on the KL model. Keras' own figures on this machine
come from ``benchmarks/keras_fashion.py``: give ``--keras-python PATH/TO/python`` (an
environment with TensorFlow) to run it inside this run, epoch by epoch in turns with
sparseae's first seed of the same recipe, so each pair of epochs sees the same minute of the
same machine; otherwise the table uses earlier runs from ``results/keras_fashion.jsonl``.

Seconds per epoch are medians over epochs (this machine's speed swings within minutes; one
slow or lucky epoch must not move the figure), for sparseae, the peer and Keras alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import sparseae
from sparseae.data import find_shared_data_dir, load_dataset
from sparseae.sparsities import keras_kl_weight

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, keras_runs, keras_val_cell, verdict, write_results  # noqa: E402

DOC_KL_BCE = 0.2691
DOC_STACKED_BCE = 0.2746


def kl_model(weight: float) -> sparseae.Autoencoder:
    return sparseae.Autoencoder(
        d_in=784,
        hidden=[100],
        n_latents=300,
        activation="gelu",
        code_activation="sigmoid",
        loss="bce",
        sparsity="kl",
        sparsity_params={"rho": 0.1, "weight": weight},
    )


def stacked_model() -> sparseae.Autoencoder:
    return sparseae.Autoencoder(
        d_in=784,
        hidden=[100],
        n_latents=30,
        activation="gelu",
        code_activation="gelu",
        loss="bce",
    )


# -- the straightforward PyTorch peer ---------------------------------------------------------
class PeerAE(nn.Module):
    def __init__(self, code: int, code_act: nn.Module) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 100), nn.GELU(), nn.Linear(100, code), code_act)
        self.decoder = nn.Sequential(
            nn.Linear(code, 100), nn.GELU(), nn.Linear(100, 784), nn.Sigmoid()
        )


def peer_kl(h: torch.Tensor, rho: float, weight: float) -> torch.Tensor:
    q = h.mean(0).clamp(1e-6, 1 - 1e-6)
    return weight * (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()


def run_peer(recipe: str, xtr: torch.Tensor, xva: torch.Tensor, epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = PeerAE(300, nn.Sigmoid()) if recipe == "kl" else PeerAE(30, nn.GELU())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCELoss()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xtr), batch_size=32, shuffle=True
    )
    times, vals = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for (xb,) in loader:
            h = model.encoder(xb)
            loss = loss_fn(model.decoder(h), xb)
            if recipe == "kl":
                loss = loss + peer_kl(h, 0.1, keras_kl_weight(0.05, 32))
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        with torch.no_grad():
            vals.append(float(loss_fn(model.decoder(model.encoder(xva)), xva)))
    return {"sec_per_epoch": statistics.median(times), "val_bce": vals[-1], "epochs": epochs}


class KerasTurns(sparseae.Callback):
    """Runs document 003's Keras code (``keras_fashion.py --gate``, in the TensorFlow
    environment ``python``) in turns with sparseae's training: before each of our epochs
    Keras runs one of its own. Each pair of epochs thus sees the same minute of this
    machine, whose speed swings about 2x within minutes."""

    def __init__(self, python: str, recipe: str, epochs: int, data_dir: str | None) -> None:
        cmd = [python, str(Path(__file__).with_name("keras_fashion.py")), "--model", recipe]
        cmd += ["--epochs", str(epochs), "--gate"]
        cmd += ["--data-dir", data_dir] if data_dir else []
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        self.seconds: list[float] = []

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("epoch_done"):
                self.seconds.append(float(line.split()[1]))
                return
        self.stderr.seek(0)
        last = self.stderr.read().decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"keras_fashion.py ended early: {last}")

    def result(self) -> dict:
        """Keras' own record of the run (also appended to results/keras_fashion.jsonl)."""
        out, _ = self.proc.communicate()
        return json.loads(out.strip().splitlines()[-1])


def run_ours(build, xtr, xva, seed: int, callbacks=(), **train) -> dict:
    torch.manual_seed(seed)  # before building: the initial weights depend on it
    model = build()
    hist = sparseae.fit(model, xtr, xva, seed=seed, progress=False, callbacks=callbacks, **train)
    secs = hist["seconds"]
    # an epoch as the trainer runs it: the training steps, then its validation pass
    walls = [t + v for t, v in zip(secs, hist["val_seconds"], strict=True)]
    return {
        "seed": seed,
        "sec_per_epoch": statistics.median(secs),
        "sec_per_epoch_incl_val": statistics.median(walls),
        "epoch_walls": walls,
        "val_bce": hist["val_recon"][-1],
        "val_bce_curve": hist["val_recon"],
        "val_loss": hist["val_loss"][-1],
        "val_mean_activation": hist["val_mean_activation"][-1],
        "epoch_seconds": secs,
        "epochs": len(secs),
    }


def time_to_target(run: dict, target: float) -> tuple[int | None, float | None]:
    """First epoch whose validation BCE reaches ``target`` and the training seconds to it."""
    cum = 0.0
    for epoch, (bce, secs) in enumerate(
        zip(run["val_bce_curve"], run["epoch_seconds"], strict=True), 1
    ):
        cum += secs
        if bce <= target:
            return epoch, cum
    return None, None


# Settings tried for the shortest time to the document's figure. Higher constant learning
# rates at batch 32 get there in fewer epochs; larger batches (even with one-cycle schedules)
# and cosine decay were tried and stop short of 0.2691 within 10 epochs (see the README).
FAST_CANDIDATES = [
    dict(batch_size=32, lr=3e-3, lr_schedule="constant", epochs=8),
    dict(batch_size=32, lr=2e-3, lr_schedule="constant", epochs=9),
    dict(batch_size=64, lr=3e-3, lr_schedule="constant", epochs=10),
]


def fastest_to_target(xtr, xva, target: float, seed: int, quick: bool) -> list[dict]:
    rows = []
    for cand in FAST_CANDIDATES[:1] if quick else FAST_CANDIDATES:
        run = run_ours(lambda: kl_model(keras_kl_weight(0.05, 32)), xtr, xva, seed, **cand)
        epoch, seconds = time_to_target(run, target)
        rows.append(
            {
                **cand,
                "final_val_bce": run["val_bce"],
                "val_bce_curve": run["val_bce_curve"],
                "reached_epoch": epoch,
                "seconds_to_target": seconds,
                "total_train_seconds": sum(run["epoch_seconds"]),
            }
        )
        print(f"  fastest search {cand}: reached at epoch {epoch} after {seconds} s", flush=True)
    return rows


def mean_std(values: list[float]) -> str:
    t = torch.tensor(values, dtype=torch.float64)
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{t.mean():.4f} ± {t.std():.4f}"


def table_row(
    label: str,
    seeds: str,
    val_cell: str,
    doc: float,
    verdict: str,
    keras_vals: str,
    secs: float,
    with_val: float,
    peer: float,
    keras: float | None,
    keras_ratio: float | None = None,
) -> str:
    """One row of the main table; ``secs`` is training s/epoch, ``with_val`` the epoch with
    the trainer's validation pass (Keras' s/epoch includes its own, so the ratio uses it);
    ``keras_ratio``, when given, is the paired measurement (see `paired_ratio`)."""
    if keras_ratio is None and keras:
        keras_ratio = keras / with_val
    cells = [label, seeds, val_cell, f"{doc:.4f}", verdict, keras_vals, f"{secs:.2f}"]
    cells += [f"{with_val:.2f}", f"{peer:.2f}", f"{keras:.2f}" if keras else "-"]
    cells += [f"{peer / secs:.2f}x", f"{keras_ratio:.2f}x" if keras_ratio else "-"]
    return "| " + " | ".join(cells) + " |"


def paired_ratio(keras: dict, ours: dict) -> tuple[list[float], float]:
    """Keras' epoch k over ours (validation included) for each k of a run in turns, and
    their median: the speed ratio that the machine's drift does not move."""
    ratios = [k / o for k, o in zip(keras["epoch_seconds"], ours["epoch_walls"], strict=True)]
    return ratios, statistics.median(ratios)


def render(results: dict, quick: bool) -> str:
    epochs, peer_epochs = results["epochs"], results["peer_epochs"]
    lines = [
        "# Document 003 on Fashion-MNIST: KL sparse AE and stacked AE",
        "",
        f"Command: `python benchmarks/kl_fashion.py{' --quick' if quick else ''}`; "
        f"{epochs} epochs, batch 32, Adam 1e-3, BCE, 55,000/5,000 split; torch "
        f"{results['torch']}, {results['threads']} threads, {results['cpus']} CPUs. Peer: a "
        f"straightforward PyTorch DataLoader loop of the same model, {peer_epochs} epochs, "
        "same process. Keras: the document's code run on this machine by "
        "`benchmarks/keras_fashion.py` (TensorFlow in its own environment), "
        + (
            "run inside this run, epoch by epoch in turns with sparseae's first seed (the "
            "ratio is the median over epochs of Keras' epoch over ours, each pair seconds "
            "apart)"
            if any(r.get("keras_same_run") for r in results["recipes"].values())
            else "earlier runs (results/keras_fashion.jsonl)"
        )
        + ", its s/epoch including its validation pass (at batch 32, Keras' default) as Keras "
        "logs it; sparseae's 'incl. val' likewise includes the trainer's own validation pass "
        "(at its default eval batch of 4,096). Every s/epoch "
        "is the median over epochs. sparseae trains these MLPs through its hand-derived "
        "forward/backward step (`sparseae.manual_step`, the default); the autograd row is the "
        "same model through autograd. 'At or below' compares at the document's printed "
        "precision (4 decimals).",
        "",
        "| recipe | seeds | val BCE (ours) | val BCE (document) | ours at or below | "
        "val loss (Keras here) | s/epoch ours | s/epoch ours incl. val | s/epoch peer | "
        "s/epoch Keras | ours vs peer | ours vs Keras |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    pairs: list = []
    for key, rec in results["recipes"].items():
        runs = rec["ours_runs"]
        doc = rec["doc_val_bce"]
        vals = [r["val_bce"] for r in runs]
        keras = keras_runs(key, epochs)
        same_run = rec.get("keras_same_run")
        paired = None
        if same_run:
            k_secs = statistics.median(same_run["epoch_seconds"])
            pair_list, paired = paired_ratio(same_run, runs[0])
            pairs.append((rec["label"], same_run, runs[0], pair_list, paired))
        else:  # earlier runs: the mean of their medians
            k_medians = [statistics.median(r["epoch_seconds"]) for r in keras]
            k_secs = sum(k_medians) / len(k_medians) if keras else None
        speeds = {"peer": rec["peer"]["sec_per_epoch"], "keras": k_secs}
        lines.append(
            table_row(
                rec["label"],
                ",".join(str(r["seed"]) for r in runs),
                ", ".join(f"{v:.4f}" for v in vals) + f" (mean {mean_std(vals)})",
                doc,
                verdict(vals, doc),
                keras_val_cell(keras),
                sum(r["sec_per_epoch"] for r in runs) / len(runs),
                sum(r["sec_per_epoch_incl_val"] for r in runs) / len(runs),
                **speeds,
                keras_ratio=paired,
            )
        )
        for name, variant in (
            ("autograd", "autograd step (`manual_backward=False`)"),
            (
                "compiled",
                "`compile=True` (autograd step compiled; first epoch, with the compile, "
                "{first:.1f} s)",
            ),
        ):
            r = rec.get(name)
            if r:
                lines.append(
                    table_row(
                        f"{rec['label']}, " + variant.format(first=r["epoch_seconds"][0]),
                        str(r["seed"]),
                        f"{r['val_bce']:.4f}",
                        doc,
                        verdict([r["val_bce"]], doc),
                        "-",
                        r["sec_per_epoch"],
                        r["sec_per_epoch_incl_val"],
                        **speeds,
                    )
                )
    for label, keras_run, ours, ratios, median in pairs:
        lines += [
            "",
            f"{label}, Keras and sparseae (seed {ours['seed']}) in turns, epoch by epoch: Keras "
            + " ".join(f"{v:.2f}" for v in keras_run["epoch_seconds"])
            + " s; sparseae incl. validation "
            + " ".join(f"{v:.2f}" for v in ours["epoch_walls"])
            + " s; ratios "
            + " ".join(f"{v:.1f}" for v in ratios)
            + f"; median ratio {median:.2f}x (the table's 'ours vs Keras'; the autograd and "
            "compiled rows divide Keras' median epoch by theirs, measured minutes apart).",
        ]
    kl_run = results["recipes"]["kl"]["ours_runs"][0]
    trap = results["trap_undivided_weight"]
    lines += [
        "",
        f"Penalty-scale trap: the KL weight 0.05 used undivided (ignoring that Keras divides "
        f"activity regularisers by the batch size) gives val BCE {trap['val_bce']:.4f} "
        f"(mean code activation {trap['val_mean_activation']:.3f}) instead of "
        f"{kl_run['val_bce']:.4f} (seed {kl_run['seed']}).",
        "",
        "Val BCE is the reconstruction BCE alone; Keras' val_loss (the document's figure) also "
        "includes the KL penalty, which for the KL model is about "
        f"{kl_run['val_loss'] - kl_run['val_bce']:.4f} here (val BCE + penalty = "
        f"{kl_run['val_loss']:.4f}).",
    ]
    epoch, seconds = time_to_target(kl_run, DOC_KL_BCE)
    if "fastest" in results:
        lines += [
            "",
            f"Shortest training time to val BCE <= {DOC_KL_BCE} on the KL model (evaluation "
            "excluded; the published recipe, seed "
            f"{kl_run['seed']}, gets there at epoch {epoch} after "
            + (f"{seconds:.1f} s)" if seconds else "- s)")
            + ":",
            "",
            "| batch | lr | schedule | epochs | val BCE per epoch | reached at epoch | "
            "seconds to target |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in results["fastest"]:
            s = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] else "not reached"
            curve = " ".join(f"{v:.4f}" for v in r["val_bce_curve"])
            lines.append(
                f"| {r['batch_size']} | {r['lr']:g} | {r['lr_schedule']} | {r['epochs']} | "
                f"{curve} | {r['reached_epoch'] or '-'} | {s} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 epochs, 1 peer epoch: smoke run")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument(
        "--peer-epochs",
        type=int,
        default=3,
        help="epochs of the DataLoader peer (its s/epoch is stable; default 3)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seeds", default="0,1,2", help="comma list of seeds for sparseae's runs")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument(
        "--keras-python",
        default=None,
        help="python of an environment with TensorFlow: run the document's Keras code in this "
        "run, epoch by epoch in turns with sparseae's first seed of each recipe",
    )
    ap.add_argument(
        "--render", action="store_true", help="only rewrite the table from the saved JSON"
    )
    args = ap.parse_args(argv)
    suffix = "_quick" if args.quick else ""
    if args.render:
        results = json.loads((RESULTS / f"kl_fashion{suffix}.json").read_text())
        table = render(results, args.quick)
        (RESULTS / f"kl_fashion{suffix}.md").write_text(table + "\n")
        print(table)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = 2 if args.quick else args.epochs
    peer_epochs = 1 if args.quick else args.peer_epochs
    seeds = [int(s) for s in args.seeds.split(",")][: 1 if args.quick else None]
    data = load_dataset("fashion-mnist", data_dir=args.data_dir or find_shared_data_dir())
    xtr, xva = torch.from_numpy(data.train.x), torch.from_numpy(data.val.x)
    print(
        f"fashion-mnist: train {len(xtr)}, val {len(xva)}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    results: dict = {
        "epochs": epochs,
        "peer_epochs": peer_epochs,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "recipes": {},
    }
    recipes = [
        ("kl", "KL sparse AE (weight 0.05/32)", lambda: kl_model(keras_kl_weight(0.05, 32))),
        ("stacked", "stacked AE 784-100-30", stacked_model),
    ]
    doc = {"kl": DOC_KL_BCE, "stacked": DOC_STACKED_BCE}
    for key, label, build in recipes:
        keras_now = None
        runs = []
        for seed in seeds:
            turns = []
            if args.keras_python and seed == seeds[0]:  # Keras and seed 0 take turns
                turns = [KerasTurns(args.keras_python, key, epochs, args.data_dir)]
            runs.append(run_ours(build, xtr, xva, seed, turns, epochs=epochs, batch_size=32))
            if turns:
                keras_now = turns[0].result()
                print(
                    f"  {label}: Keras in turns {statistics.median(keras_now['epoch_seconds']):.2f}"
                    f" s/epoch (median), val loss {keras_now['val_loss'][-1]:.4f}",
                    flush=True,
                )
            print(
                f"  {label} seed {seed}: {runs[-1]['sec_per_epoch']:.2f} s/epoch, "
                f"val BCE {runs[-1]['val_bce']:.4f} (document {doc[key]})",
                flush=True,
            )
        # the same recipe through autograd, and with the autograd step compiled (opt-in
        # `compile=True`, whose first epoch includes the one-off compile)
        autograd = run_ours(
            build, xtr, xva, seeds[0], epochs=epochs, batch_size=32, manual_backward=False
        )
        compiled = run_ours(build, xtr, xva, seeds[0], epochs=epochs, batch_size=32, compile=True)
        for name, run in (("autograd", autograd), ("compiled", compiled)):
            print(
                f"  {label} {name}: {run['sec_per_epoch']:.2f} s/epoch, "
                f"val BCE {run['val_bce']:.4f}",
                flush=True,
            )
        peer = run_peer(key, xtr, xva, peer_epochs, seeds[0])
        print(f"  {label}: peer {peer['sec_per_epoch']:.2f} s/epoch", flush=True)
        results["recipes"][key] = {
            "label": label,
            "doc_val_bce": doc[key],
            "ours_runs": runs,
            "autograd": autograd,
            "compiled": compiled,
            "keras_same_run": keras_now,
            "peer": peer,
        }
    trap = run_ours(lambda: kl_model(0.05), xtr, xva, seeds[0], epochs=epochs, batch_size=32)
    results["trap_undivided_weight"] = trap
    if not args.skip_search:
        results["fastest"] = fastest_to_target(xtr, xva, DOC_KL_BCE, seeds[0], args.quick)
    table = render(results, args.quick)
    print()
    print(table)
    write_results("kl_fashion", table, results, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
