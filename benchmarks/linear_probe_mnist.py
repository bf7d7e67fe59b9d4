"""k-sparse AE features on MNIST (Makhzani & Frey 2013): 1,000 latents, k = 25, alpha*k = 75
at inference; logistic regression on the 60,000 training codes, error on the 10,000 test
images, next to scikit-learn's logistic regression on raw pixels (and, with ``--pca``, on PCA
features) fitted in the same run. The paper reports 1.35% error without fine-tuning.

Two recipes (`RECIPES`), both through `sparseae.fit`:

- ``tied`` (the paper's model): a one-layer `Autoencoder` with tied weights and a linear
  k-sparse code (kept values may be negative), linear output, MSE; SGD with momentum 0.9;
  atoms started at centred training images (``atom_init='data'``, norm 0.3, decoder bias at
  the mean), k moved down from 100 to 25 over the first half of the epochs (the paper's
  schedule), dead latents (silent for an epoch) resampled every epoch; 140 epochs (the
  paper ran 5,000), the learning rate falling linearly to 0 over the second half. It trains
  through `KSparseStep`, the sparse hand-derived step (2.3x autograd's time on 40 epochs).
- ``sae``: sparseae's dictionary `SAE` (sparse TopK kernels, untied encoder started as the
  decoder's transpose, unit-norm atoms, decoder bias at the geometric median), ReLU code, k
  from 100 to 25 over 5 epochs, AuxK on latents silent for 20,000 samples, Adam with a
  cosine learning-rate decay.

The probe is multinomial logistic regression on the unstandardised sparse codes, its L2
strength chosen on the last sixth of the training images (never on test labels), then refit
on all 60,000.

One command: ``python benchmarks/linear_probe_mnist.py`` (``--quick``: 10,000 images, 2
epochs, 1 seed, a smoke run; ``--recipes tied`` runs one recipe; ``--epochs`` sets every
recipe's epochs). To choose settings without
the test labels, ``--validation`` scores the probe on the last 10,000 training images (the
AE still trains on all of them, unsupervised; results in ``linear_probe_mnist_validation``)
and ``--set train.lr=11`` / ``--set model.tied=false`` changes one setting of the recipes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import torch
from _common import md_table, write_results

import sparseae
from sparseae.apps.features import ProbeResult, encode, linear_probe
from sparseae.data import find_shared_data_dir, load_dataset
from sparseae.data.sources import global_steps

PAPER_ERROR = 1.35
VALIDATION_ROWS = 10_000  # --validation scores the probe on the last training images
N_LATENTS, K = 1000, 25
CS = (0.3, 1.0, 3.0)  # candidate inverse L2 strengths of the probe
#: each recipe: its epochs, the model's settings and its TrainConfig fields (a
#: ``sparsity_warmup`` of None is half the run's steps, the paper's schedule; an
#: ``lr_decay_steps`` of None is the steps after that warm-up)
RECIPES: dict[str, dict[str, Any]] = {
    "tied": {
        "label": "tied k-sparse AE (the paper's model), SGD",
        "epochs": 140,
        "model": {
            "kind": "autoencoder",
            "tied": True,
            "code_activation": "linear",
            "output_activation": "linear",
            "loss": "mse",
            "relu": False,
        },  # fmt: skip
        "train": {
            "batch_size": 128,
            "optimizer": "sgd",
            "lr": 15.7,  # on the MSE averaged over pixels: 0.02 on the error summed over them
            "warmup_steps": 2000,  # a caution: stop 24 saw this lr diverge without it
            "sgd_momentum": 0.9,
            "sparsity_warmup": None,
            "lr_decay_steps": None,
            "k_start": 100,
            "atom_init": "data",
            "atom_init_norm": 0.3,
            "b_dec_init": "mean",
            "dead_after": 60_000,
            "resample_every": 469,  # an epoch at batch 128
            "num_threads": 1,
        },
    },
    "sae": {
        "label": "dictionary SAE (untied, ReLU code), Adam",
        "epochs": 40,
        "model": {"kind": "sae", "code_activation": "relu", "relu": True},
        "train": {
            "batch_size": 256,
            "lr": 1e-3,
            "lr_schedule": "cosine",
            "sparsity_warmup": 1170,  # steps: 5 epochs of 60,000 at batch 256
            "k_start": 100,
            "dead_after": 20_000,
            "aux_k": 64,
            "num_threads": 1,
        },
    },
}


def build_model(recipe: dict[str, Any], d_in: int, alpha: float) -> Any:
    """The recipe's k-sparse model: 1,000 latents, k = 25, alpha*k kept at inference."""
    spec = dict(recipe["model"])
    kind, relu = spec.pop("kind"), spec.pop("relu")
    params = {"k": K, "alpha": alpha, "relu": relu}
    cls = sparseae.Autoencoder if kind == "autoencoder" else sparseae.SAE
    return cls(d_in=d_in, n_latents=N_LATENTS, sparsity="topk", sparsity_params=params, **spec)


def train_ksparse(x: np.ndarray, recipe: dict, epochs: int, alpha: float, seed: int) -> dict:
    """One k-sparse model and its training cost: CPU seconds (all threads) and wall seconds."""
    torch.manual_seed(seed)
    model = build_model(recipe, x.shape[1], alpha)
    train = dict(recipe["train"])
    steps = epochs * global_steps(len(x), train["batch_size"], 1)
    warmup = min(train["sparsity_warmup"] or steps // 2, steps)  # shorter in a --quick run
    decay = train.get("lr_decay_steps", 0)
    decay = steps - warmup if decay is None else decay  # None: the steps after the warm-up
    train |= {"sparsity_warmup": warmup, "lr_decay_steps": decay}
    config = sparseae.TrainConfig(**train, epochs=epochs, seed=seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sparseae.fit(model, x, config=config, progress=False)
    return {
        "model": model,
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.perf_counter() - wall0,
        "warmup_steps": warmup,
        "lr_decay_steps": config.lr_decay_steps,
        "epochs": epochs,
    }


def never_fire(codes: np.ndarray) -> int:
    """Latents that are zero on every row: dead for the classifier, whatever the trainer saw."""
    return int(((codes != 0).sum(0) == 0).sum())


def seed_run(data: Any, name: str, recipe: dict, args: Any, seed: int, standardised: bool) -> dict:
    """Train, encode, probe (and, if asked, the standardised probe beside) for one seed."""
    epochs = args.epochs or recipe["epochs"]
    run = train_ksparse(data.train.x, recipe, epochs, args.alpha, seed)
    model = run.pop("model")
    xtr, ytr, xte, yte = probe_split(data, args.validation)
    ctr, cte = encode(model, xtr), encode(model, xte)
    probe = linear_probe(ctr, ytr, cte, yte, Cs=CS)
    run |= {
        "recipe": name,
        "seed": seed,
        "test_error": 100 * (1 - probe.accuracy),
        "probe": probe_record(probe),
        "dead_at_inference": never_fire(ctr),
        "inference_k": model.sparsity.inference_k,
    }
    if standardised:  # dense 60,000 x 1,000: scikit-learn's defaults, as the old benchmark
        std = linear_probe(ctr, ytr, cte, yte, Cs=(0.1,), standardize=True, max_iter=300, tol=1e-4)
        run["standardised"] = probe_record(std) | {"test_error": 100 * (1 - std.accuracy)}
    print(
        f"{name} seed {seed}: error {run['test_error']:.2f}%, {run['cpu_s']:.0f} CPU-s "
        f"({run['wall_s']:.0f} s wall), {run['dead_at_inference']} latents never fire, "
        f"probe C {probe.C:g} ({probe.cpu_seconds:.0f} CPU-s)",
        flush=True,
    )
    return run


def load_mnist(args: Any) -> Any:
    return load_dataset(
        "mnist",
        data_dir=args.data_dir or find_shared_data_dir(),
        val_size=0,
        limit=10_000 if args.quick else None,
    )


def run_in_worker(task: tuple) -> dict:
    """`seed_run` in a spawned process (--jobs), which loads its own copy of the data."""
    torch.set_num_threads(1)
    return seed_run(load_mnist(task[2]), *task)


def probe_split(data: Any, validation: bool) -> tuple[np.ndarray, ...]:
    """The probe's (x_fit, y_fit, x_score, y_score): the test set, or with ``validation`` the
    last 10,000 training images, so that settings are chosen without the test labels."""
    if not validation:
        return data.train.x, data.train.y, data.test.x, data.test.y
    x, y = data.train.x, data.train.y
    n = validation_rows(len(x))
    return x[:-n], y[:-n], x[-n:], y[-n:]


def validation_rows(n_train: int) -> int:
    """10,000 of the 60,000 (the paper's split); a sixth of a --quick run's images."""
    return min(VALIDATION_ROWS, n_train // 6)


def apply_overrides(pairs: list[str], names: list[str]) -> None:
    """``--set train.lr=11``: each SECTION.FIELD=JSON (a bare word as a string) into the
    recipes that run, so a one-change experiment is one command."""
    train_fields = {f.name for f in dataclasses.fields(sparseae.TrainConfig)}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot or section not in ("model", "train"):
            raise ValueError(f"--set takes model.FIELD=VALUE or train.FIELD=VALUE, got {pair!r}")
        if section == "train" and field not in train_fields:
            raise ValueError(f"--set {key}: TrainConfig has no field {field!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        for name in names:
            RECIPES[name][section][field] = value


def probe_record(p: ProbeResult) -> dict[str, Any]:
    """A probe's result as JSON (the settings line included, so the file says what ran)."""
    return {
        "C": p.C,
        "val_accuracy": {str(c): a for c, a in p.val_accuracy.items()},
        "n_iter": p.n_iter,
        "cpu_s": p.cpu_seconds,
        "settings": p.settings(),
    }


def peers(data: Any, n_pca: int, validation: bool) -> list[dict[str, Any]]:
    """scikit-learn's logistic regression on raw pixels and on PCA features, same probe."""
    from sklearn.decomposition import PCA

    xtr, ytr, xte, yte = probe_split(data, validation)
    raw = linear_probe(xtr, ytr, xte, yte, Cs=CS)
    rows = [{"features": "raw pixels (784)", "error": 100 * (1 - raw.accuracy), "probe": raw}]
    if n_pca:
        t0 = time.process_time()
        pca = PCA(n_components=n_pca, random_state=0).fit(xtr)
        pca_s = time.process_time() - t0
        pc = linear_probe(pca.transform(xtr), ytr, pca.transform(xte), yte, Cs=CS)
        err = 100 * (1 - pc.accuracy)
        rows.append({"features": f"PCA {n_pca}", "error": err, "probe": pc, "fit_s": pca_s})
    return rows


def summary(values: list[float]) -> tuple[float, str]:
    """Median and range: with 2-3 seeds a mean and std would pretend to more."""
    return statistics.median(values), f"{min(values):.2f} to {max(values):.2f}"


def recipe_row(name: str, runs: list[dict]) -> dict[str, Any]:
    """One recipe's row: median and range over its seeds."""
    err_med, err_rng = summary([r["test_error"] for r in runs])
    return {
        "features": f"{RECIPES[name]['label']}: {N_LATENTS} latents, k={K}, "
        f"alpha*k={runs[0]['inference_k']}",
        "test error % (median)": err_med,
        "range": err_rng,
        "latents never firing": "/".join(str(r["dead_at_inference"]) for r in runs),
        "train CPU-s": statistics.median(r["cpu_s"] for r in runs),
        "train wall s": statistics.median(r["wall_s"] for r in runs),
        "probe CPU-s": statistics.median(r["probe"]["cpu_s"] for r in runs),
        "probe C": "/".join(f"{r['probe']['C']:g}" for r in runs),
    }


def table(runs: list[dict], peer_rows: list[dict]) -> str:
    """A row per recipe over seeds, the standardised probe, the peers and the paper's figure."""
    names = list(dict.fromkeys(r["recipe"] for r in runs))
    rows = [recipe_row(n, [r for r in runs if r["recipe"] == n]) for n in names]
    for r in runs:
        if "standardised" in r:
            rows.append(
                {
                    "features": f"{r['recipe']} seed {r['seed']}'s codes, standardised probe "
                    "(C = 0.1, tol 1e-4, 300 iterations)",
                    "test error % (median)": r["standardised"]["test_error"],
                    "probe CPU-s": r["standardised"]["cpu_s"],
                }
            )
    for p in peer_rows:
        rows.append(
            {
                "features": f"scikit-learn LogisticRegression, {p['features']}",
                "test error % (median)": p["error"],
                "train CPU-s": p.get("fit_s", 0.0),
                "probe CPU-s": p["probe"].cpu_seconds,
            }
        )
    rows.append({"features": "Makhzani & Frey 2013 (paper)", "test error % (median)": PAPER_ERROR})
    columns = ["features", "test error % (median)", "range", "latents never firing"]
    return md_table(rows, columns + ["train CPU-s", "train wall s", "probe CPU-s", "probe C"])


def main(argv: list[str] | None = None) -> int:
    """Train and probe every seed, then the peers on the same split; write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=None, help="every recipe's (default: its own)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=3.0)
    ap.add_argument("--recipes", default="tied,sae", help="comma-separated: tied, sae")
    ap.add_argument("--pca", type=int, default=0, help="PCA components of a peer row (0: none)")
    ap.add_argument(
        "--standardised", action="store_true", help="also probe seed 0's standardised codes"
    )
    ap.add_argument(
        "--validation",
        action="store_true",
        help="score on the last 10,000 training images, not the test set (to choose settings)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=JSON",
        help="override a recipe setting, e.g. train.lr=11 or model.tied=false (repeatable)",
    )
    ap.add_argument("--data-dir", default=None)
    ap.add_argument(
        "--jobs", type=int, default=1, help="runs at once, each in its own 1-thread process"
    )
    args = ap.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # the command line, for the report
    torch.set_num_threads(1)
    if args.quick:
        args.epochs, args.seeds = 2, 1
    names = [n for n in args.recipes.split(",") if n]
    if not names or any(n not in RECIPES for n in names):
        ap.error(f"--recipes takes a comma-separated list of {', '.join(RECIPES)}")
    try:
        apply_overrides(args.set, names)
    except ValueError as exc:
        ap.error(str(exc))
    data = load_mnist(args)
    t0 = time.perf_counter()
    tasks = [(name, RECIPES[name], args, s, s == 0 and name == names[0] and args.standardised)
             for name in names for s in range(args.seeds)]  # fmt: skip
    if args.jobs > 1:  # each run in its own process, one thread each: CPU seconds unchanged
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            runs = list(pool.map(run_in_worker, tasks))
    else:
        runs = [seed_run(data, *task) for task in tasks]
    peer_rows = peers(data, args.pca, args.validation)
    text = report(args, runs, peer_rows, len(data.train.x), time.perf_counter() - t0)
    print(text)
    peers_json = [{k: v for k, v in p.items() if k != "probe"} | {"probe": probe_record(p["probe"])}
                  for p in peer_rows]  # fmt: skip
    recipes = {n: RECIPES[n] for n in names}
    payload = {"recipes": recipes, "runs": runs, "peers": peers_json}
    stem = "linear_probe_mnist" + ("_validation" if args.validation else "")
    write_results(stem, text, payload, args.quick)
    return 0


def report(args: Any, runs: list[dict], peer_rows: list[dict], n: int, s: float) -> str:
    """The markdown report: the command as typed, the recipes, the probe, the table."""
    flags = "".join(f" {a}" for a in args.argv)
    scheduled = ("sparsity_warmup", "lr_decay_steps")  # given in steps, as they ran
    recipes = "".join(
        f"- `{r['recipe']}`: {RECIPES[r['recipe']]['label']}; {r['epochs']} epochs, "
        f"{r['warmup_steps']} steps of k warm-up"
        + (f", the lr falling to 0 over the last {r['lr_decay_steps']} steps"
           if r["lr_decay_steps"] else "")
        + f"; model {RECIPES[r['recipe']]['model']}; training "
        f"{ {k: v for k, v in RECIPES[r['recipe']]['train'].items() if k not in scheduled} }"
        "\n" for r in runs if r["seed"] == 0
    )  # fmt: skip
    rows, v = table(runs, peer_rows), validation_rows(n)
    scored = (
        f"the probe fitted on the first {n - v} and scored on the last {v} training "
        "images (validation: the error columns are on those, "
        "not on the test set)"
        if args.validation
        else "the probe scored on the test set"
    )
    return (
        "# Linear probe on k-sparse AE features, MNIST\n\n"
        f"Command: `python benchmarks/linear_probe_mnist.py{flags}`; {n} training images, "
        f"{scored}, "
        f"{args.seeds} seed(s) per recipe; {time.strftime('%Y-%m-%d')}, "
        f"{s:.0f} s wall in all on a shared 2-core machine (CPU seconds by "
        "`time.process_time`, all threads; wall times there depend on the other jobs).\n\n"
        f"Recipes (`RECIPES` in the script, through `sparseae.fit`):\n{recipes}\n"
        f"Probe (first run's; each run's C in the table): {runs[0]['probe']['settings']}; refit "
        "on all its fitting rows; the peers use the same probe function on their features.\n\n"
        + (rows.replace("test error %", "validation error %") if args.validation else rows)
    )


if __name__ == "__main__":
    sys.exit(main())
