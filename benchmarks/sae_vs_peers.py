"""TopK SAE training on CPU: sparseae against EleutherAI sparsify, SAELens and
dictionary_learning, each library with its own SAE module, loss and step.

(a) Step speed, d_in 768, k 32, fp32 Adam for all: samples/s of one full training step
    (forward, loss, backward, the library's decoder-norm handling, Adam), the libraries
    interleaved step by step (A, B, C, D, A, ...) so machine noise hits all alike; median
    and range over the repeats, process CPU seconds beside wall seconds. sparseae runs the
    step its trainer runs (`Trainer._train_step` + step-end callbacks: the fused sparse
    step, AuxK folded in); "auxk" rows give every library with an AuxK term a dead set of
    the same size (the latents that did not fire in a warm-up batch). Peak RSS: each
    library alone in a fresh subprocess (ru_maxrss after the steps).
(b) Time to a held-out FVU on structured data (sparse combinations of a random dictionary
    plus noise, `sae_speed.synthetic`): each library's *defaults* (init, lr, optimizer,
    warm-ups); training wall seconds (evaluation excluded) and steps until the held-out
    FVU first reaches the target, checked every few steps.
(c) The bf16-screened support (``SAEConfig(bf16_screen=True)``, `sparseae.models.sae.screen`):
    the interleaved step timing of (a), same configurations, for sparseae with and without
    it and for sparsify in fp32 and under CPU bf16 autocast (its own mixed precision: bf16
    products and values), with the share of rows the screen's check sent back to fp32.

Run with the peers' venv (see the Makefile's ``peers`` target):

    PYTHONPATH=$(.venv/bin/python -c "import site; print(site.getsitepackages()[0])") \\
        .peers/bin/python benchmarks/sae_vs_peers.py [--quick] [--screen-only]

Writes benchmarks/results/sae_vs_peers.{md,json} (``_quick`` with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks"), str(ROOT / "tests" / "fixtures")]

from _common import md_table, write_results  # noqa: E402
from make_peer_checkpoints import shallow  # noqa: E402
from sae_speed import synthetic  # noqa: E402

from sparseae.models.sae.model import SAE  # noqa: E402
from sparseae.training.config import TrainConfig  # noqa: E402
from sparseae.training.trainer import Trainer  # noqa: E402

D_IN, K = 768, 32
LIBS = ("sparseae", "sparsify", "saelens", "dictionary_learning")
SCREEN_LIBS = ("sparseae", "sparseae-bf16screen", "sparsify", "sparsify-bf16")


def data(n_rows: int, d_in: int, n_true: int, seed: int = 0) -> torch.Tensor:
    return synthetic(n_rows, d_in, n_true, 8, torch.Generator().manual_seed(seed))


# -- each library's training step ------------------------------------------------------------
def sparseae_step(
    x: torch.Tensor, n: int, batch: int, auxk: bool, defaults: bool = False, screen: bool = False
) -> Any:
    """The trainer's own step (the fused sparse step, AuxK folded in), on a prepared Trainer."""
    torch.manual_seed(0)
    model = SAE(d_in=x.shape[1], n_latents=n, sparsity="topk", sparsity_params={"k": K},
                bf16_screen=screen)  # fmt: skip
    extra = {} if defaults else {"b_dec_init": "none"}
    if auxk:  # a latent is dead after one batch without firing: a dead set from step 2 on
        extra.update(dead_after=batch, aux_k=x.shape[1] // 2)  # the peers' d_in / 2
    return trainer_step(model, TrainConfig(batch_size=batch, epochs=1, **extra), x)


def trainer_step(model: SAE, cfg: TrainConfig, x: torch.Tensor) -> Any:
    """One step of the library's Trainer (its own step and hooks) as a function of a batch."""
    trainer = Trainer(model, cfg, progress=False)
    trainer._prepare(x, None, False, ())

    def step(xb: torch.Tensor) -> None:
        out = trainer._train_step(xb, 10**9)
        for hook in trainer.step_end:
            hook(trainer, out)

    return step, model


def sparsify_step(x: torch.Tensor, n: int, auxk: bool, lr: float | None = None) -> Any:
    """sparsify's trainer step: FVU (+ AuxK with a dead mask), backward, parallel-gradient
    removal, Adam, unit-norm decoder (its eager CPU path: the Triton kernels need a GPU)."""
    sc = shallow("sparsify", "sparse_coder")
    cfg = shallow("sparsify", "config").SparseCoderConfig(num_latents=n, k=K)
    torch.manual_seed(0)
    sae = sc.SparseCoder(x.shape[1], cfg)
    opt = torch.optim.Adam(sae.parameters(), lr=lr or 2e-4 / (n / 2**14) ** 0.5)
    fired = torch.zeros(n, dtype=torch.bool)

    def step(xb: torch.Tensor) -> None:
        dead = ~fired if auxk and fired.any() else None
        out = sae(xb, dead_mask=dead)
        loss = out.fvu + (out.auxk_loss / 32 if auxk else 0.0)
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        sae.set_decoder_norm_to_unit_norm()
        if auxk and not fired.any():
            fired[out.latent_indices.reshape(-1)] = True

    return step, sae


def saelens_step(x: torch.Tensor, n: int, auxk: bool) -> Any:
    """SAELens' TopKTrainingSAE.training_forward_pass (its MSE + AuxK when given a dead
    mask), backward, Adam (lr 3e-4, its default). Decoder norms are free (its default
    rescale_acts_by_decoder_norm), so no projection or renormalisation."""
    mod = shallow("sae_lens.saes", "topk_sae")
    base = shallow("sae_lens.saes", "sae")
    registry = shallow("sae_lens", "registry")
    if "topk" not in registry.SAE_CLASS_REGISTRY:  # its package __init__ registers these
        registry.register_sae_class("topk", mod.TopKSAE, mod.TopKSAEConfig)
        registry.register_sae_training_class("topk", mod.TopKTrainingSAE,
                                             mod.TopKTrainingSAEConfig)  # fmt: skip
    torch.manual_seed(0)
    sae = mod.TopKTrainingSAE(mod.TopKTrainingSAEConfig(d_in=x.shape[1], d_sae=n, k=K))
    opt = torch.optim.Adam(sae.parameters(), lr=3e-4)
    fired = torch.zeros(n, dtype=torch.bool)

    def step(xb: torch.Tensor) -> None:
        dead = ~fired if auxk and fired.any() else None
        inp = base.TrainStepInput(xb, {}, dead, 0, False)
        out = sae.training_forward_pass(inp)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        if auxk and not fired.any():
            fired[(out.feature_acts != 0).any(0)] = True

    return step, sae


def dictionary_learning_step(x: torch.Tensor, n: int, steps: int) -> Any:
    """dictionary_learning's TopKTrainer.update (its loss with its own AuxK, parallel-grad
    removal, grad clipping, Adam, schedule, unit norm) with its defaults."""
    mod = shallow("dictionary_learning.trainers", "top_k")
    torch.manual_seed(0)
    trainer = mod.TopKTrainer(steps=max(steps, 1001), activation_dim=x.shape[1], dict_size=n, k=K,
                              layer=0, lm_name="none", device="cpu", seed=0)  # fmt: skip
    counter = [0]

    def step(xb: torch.Tensor) -> None:
        trainer.update(counter[0], xb)
        counter[0] += 1

    return step, trainer.ae


def autocast_bf16(step: Any) -> Any:
    def run(xb: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            step(xb)

    return run


def build(lib: str, x: torch.Tensor, n: int, batch: int, auxk: bool, steps: int) -> Any:
    if lib in ("sparseae", "sparseae-bf16screen"):
        return sparseae_step(x, n, batch, auxk, screen=lib == "sparseae-bf16screen")
    if lib in ("sparsify", "sparsify-bf16"):
        step, sae = sparsify_step(x, n, auxk)
        return (autocast_bf16(step) if lib == "sparsify-bf16" else step), sae
    if lib == "saelens":
        return saelens_step(x, n, auxk)
    return dictionary_learning_step(x, n, steps)


# -- (a) step speed ---------------------------------------------------------------------------
def speed_rows(
    n: int, batch: int, repeats: int, warmup: int, auxk: bool, libs: tuple[str, ...] = LIBS
) -> list[dict]:
    """Interleaved repeats of one step per library; median and range of samples/s."""
    if auxk and libs == LIBS:
        libs = ("sparseae", "sparsify", "saelens")
    x = data(batch * 4, D_IN, max(n // 4, 64))
    built = {lib: build(lib, x, n, batch, auxk, warmup + repeats) for lib in libs}
    steps = {lib: step for lib, (step, _) in built.items()}
    wall: dict[str, list[float]] = {lib: [] for lib in libs}
    cpu: dict[str, list[float]] = {lib: [] for lib in libs}
    for it in range(warmup + repeats):
        xb = x[(it % 4) * batch : (it % 4 + 1) * batch]
        for lib in libs:
            t0, c0 = time.perf_counter(), time.process_time()
            steps[lib](xb)
            if it >= warmup:
                wall[lib].append(time.perf_counter() - t0)
                cpu[lib].append(time.process_time() - c0)
    rows = []
    ref = statistics.median(wall["sparsify"])
    for lib in libs:
        med = statistics.median(wall[lib])
        rows.append({
            "library": lib, "n_latents": n, "batch": batch, "auxk": auxk,
            "samples_per_s": batch / med, "min_samples_per_s": batch / max(wall[lib]),
            "max_samples_per_s": batch / min(wall[lib]), "wall_s": med,
            "cpu_s": statistics.median(cpu[lib]), "vs_sparsify": ref / med,
        })  # fmt: skip
        screen = getattr(built[lib][1], "screen", None)
        if screen is not None:
            rows[-1]["recomputed_rows"] = screen.recomputed_rows / max(1, screen.checked_rows)
    return rows


def peak_rss(lib: str, n: int, batch: int, auxk: bool, steps: int) -> dict:
    """Peak RSS (MB) of ``steps`` steps of one library, alone in a fresh process, and how
    much the steps added to the high-water mark of imports, data and model."""
    cmd = [sys.executable, __file__, "--rss-of", lib, str(n), str(batch), str(int(auxk)),
           str(steps)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_child(lib: str, n: int, batch: int, auxk: bool, steps: int) -> None:
    """The high-water mark is reset after the set-up (Linux: ``/proc/self/clear_refs``),
    so the peak is the steps' own (with the model, data and optimizer resident), not the
    synthetic data's generation, which peaks higher than any library's step."""
    x = data(batch * 4, D_IN, max(n // 4, 64))
    step = build(lib, x, n, batch, auxk, steps)[0]
    reset = _reset_peak()
    before = (
        _proc_status_mb("VmRSS")
        if reset
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    for it in range(steps):
        step(x[(it % 4) * batch : (it % 4 + 1) * batch])
    peak = (
        _proc_status_mb("VmHWM")
        if reset
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(
        json.dumps(
            {
                "peak_rss_mb": peak,
                "step_rss_mb": peak - before,
                "rss_method": "VmHWM reset" if reset else "ru_maxrss",
            }
        )
    )


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- (b) time to a held-out FVU ---------------------------------------------------------------
def fvu_of(lib: str, model: Any, x: torch.Tensor) -> float:
    with torch.no_grad():
        if lib == "sparseae":
            was = model.training
            model.eval()
            x_hat = model(x)
            model.train(was)
        elif lib == "sparsify":
            x_hat = model(x).sae_out
        else:
            x_hat = model(x) if lib == "dictionary_learning" else model.decode(model.encode(x))
    return float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def default_step(lib: str, x: torch.Tensor, n: int, batch: int, steps: int) -> Any:
    """Each library's defaults (sparseae: `TrainConfig()` and `SAEConfig` defaults;
    sparseae-old: eps 1e-7 and encoder norm 1, the defaults before this change; sparsify:
    its Adam option, lr 2e-4/sqrt(n/2^14) -- its default signum optimizer needs the
    schedulefree package, not installed here; SAELens: lr 3e-4; dictionary_learning: its
    TopKTrainer defaults, lr warm-up over 1,000 steps included)."""
    if lib == "sparseae-old":
        torch.manual_seed(0)
        model = SAE(d_in=x.shape[1], n_latents=n, sparsity_params={"k": K},
                    encoder_init_norm=1.0)  # fmt: skip
        return trainer_step(model, TrainConfig(batch_size=batch, epochs=1, eps=1e-7), x)
    if lib == "sparseae":
        return sparseae_step(x, n, batch, False, defaults=True)
    return build(lib, x, n, batch, False, steps)


def time_to_fvu(lib: str, x: torch.Tensor, xv: torch.Tensor, n: int, batch: int,
                max_steps: int, target: float, every: int,
                wall_cap: float | None = None) -> dict:  # fmt: skip
    t_build = time.perf_counter()
    step, model = default_step(lib, x, n, batch, max_steps)
    setup = time.perf_counter() - t_build
    wall, reached, curve = 0.0, None, []
    n_batches = x.shape[0] // batch
    for it in range(max_steps):
        if wall_cap is not None and wall > wall_cap:  # already over: "not reached within"
            break
        t0 = time.perf_counter()
        step(x[(it % n_batches) * batch : (it % n_batches + 1) * batch])
        wall += time.perf_counter() - t0
        if (it + 1) % every == 0:
            fvu = fvu_of(lib.split("-")[0], model, xv)
            curve.append((it + 1, fvu))
            if fvu <= target:
                reached = {"steps": it + 1, "wall_s": wall}
                break
    return {"library": lib, "target_fvu": target, "reached": reached is not None,
            "steps": reached["steps"] if reached else None,
            "wall_s": reached["wall_s"] if reached else None, "setup_s": setup,
            "last_fvu": curve[-1][1] if curve else None, "steps_run": it + 1,
            "wall_run_s": wall, "curve": curve}  # fmt: skip


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run, small sizes")
    p.add_argument("--rss-of", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=7, help="interleaved timing repeats")
    p.add_argument("--no-65536", action="store_true", help="skip the 65,536-latent row")
    p.add_argument("--fvu-steps", type=int, default=1500, help="step cap of the FVU race")
    p.add_argument(
        "--fvu-wall-cap",
        type=float,
        default=None,
        help="stop a library's FVU race after this many seconds of steps",
    )
    p.add_argument(
        "--screen-only",
        action="store_true",
        help="run section (c) alone; (a) and (b) are kept from the results json",
    )
    p.add_argument(
        "--reuse",
        default=None,
        help="stdout of an interrupted run: its printed rows are kept, not rerun",
    )
    a = p.parse_args()
    if a.rss_of:
        lib, n, batch, auxk, steps = a.rss_of
        rss_child(lib, int(n), int(batch), bool(int(auxk)), int(steps))
        return
    if a.quick:
        grid, repeats, warmup, rss_steps = [(2048, 256)], 3, 1, 2
        fvu_cfg = dict(n=1024, batch=256, max_steps=60, target=0.5, every=10, d=128)
    else:
        grid = [(16384, 1024), (16384, 4096)] + ([] if a.no_65536 else [(65536, 4096)])
        repeats, warmup, rss_steps = a.repeats, 2, 4
        fvu_cfg = dict(n=4096, batch=1024, max_steps=a.fvu_steps, target=0.2, every=25, d=D_IN,
                       wall_cap=a.fvu_wall_cap)  # fmt: skip
    if a.screen_only:
        saved = json.loads((ROOT / "benchmarks" / "results" / "sae_vs_peers.json").read_text())
        screen = screen_section(grid, repeats, warmup, rss_steps)
        report(saved["speed"], saved["time_to_fvu"], fvu_cfg, a.quick, screen)
        return
    speed, done_fvu = reused_rows(a.reuse)
    for r in speed:  # rows of a run whose peak RSS was the data's generation: measure again
        if r.get("rss_method") != "VmHWM reset":
            r.update(peak_rss(r["library"], r["n_latents"], r["batch"], r["auxk"], rss_steps))
    for n, batch in grid:
        for auxk in (False, True):
            if any((r["n_latents"], r["batch"], r["auxk"]) == (n, batch, auxk) for r in speed):
                continue
            rows = speed_rows(n, batch, repeats, warmup, auxk)
            for r in rows:
                r.update(peak_rss(r["library"], n, batch, auxk, rss_steps))
                print(json.dumps(r), flush=True)
            speed += rows
    fvu = run_fvu(fvu_cfg, done_fvu)
    report(speed, fvu, fvu_cfg, a.quick, screen_section(grid, repeats, warmup, rss_steps))


def screen_section(grid: list, repeats: int, warmup: int, rss_steps: int) -> list[dict]:
    """(c): the four steps interleaved, each configuration with and without AuxK."""
    rows = []
    for n, batch in grid:
        for auxk in (False, True):
            part = speed_rows(n, batch, repeats, warmup, auxk, SCREEN_LIBS)
            for r in part:
                r.update(peak_rss(r["library"], n, batch, auxk, rss_steps))
                print(json.dumps(r), flush=True)
            rows += part
    return rows


def reused_rows(log: str | None) -> tuple[list[dict], list[dict]]:
    """The JSON rows an interrupted run printed (speed rows, FVU rows), to finish it."""
    if log is None:
        return [], []
    rows = [json.loads(line) for line in Path(log).read_text().splitlines()
            if line.startswith("{")]  # fmt: skip
    return [r for r in rows if "samples_per_s" in r], [r for r in rows if "target_fvu" in r]


def run_fvu(cfg: dict, done: list[dict] = ()) -> list[dict]:  # type: ignore[assignment]
    d, n = cfg["d"], cfg["n"]
    rows_all = data(cfg["batch"] * 40 + 4096, d, n // 2, seed=1)  # one dictionary
    x, xv = rows_all[:-4096], rows_all[-4096:]  # held-out rows: the last 4,096
    rows = list(done)
    for lib in ("sparseae", "sparseae-old", "sparsify", "saelens", "dictionary_learning"):
        if any(r["library"] == lib for r in done):
            continue
        r = time_to_fvu(lib, x, xv, n, cfg["batch"], cfg["max_steps"], cfg["target"],
                        cfg["every"], cfg.get("wall_cap"))  # fmt: skip
        print(json.dumps({k: v for k, v in r.items() if k != "curve"}), flush=True)
        rows.append(r)
    return rows


def report(
    speed: list[dict], fvu: list[dict], fvu_cfg: dict, quick: bool, screen: list[dict]
) -> None:
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "quick": quick,
            "d_in": D_IN, "k": K, "time_to_fvu": fvu_cfg}  # fmt: skip
    cols = ["library", "n_latents", "batch", "auxk", "samples_per_s", "min_samples_per_s",
            "max_samples_per_s", "vs_sparsify", "wall_s", "cpu_s", "peak_rss_mb",
            "step_rss_mb"]  # fmt: skip
    fcols = ["library", "target_fvu", "reached", "steps", "wall_s", "last_fvu", "steps_run",
             "wall_run_s", "setup_s"]  # fmt: skip
    text = "\n".join([
        f"# TopK SAE training on CPU vs peers ({meta['threads']} threads, torch "
        f"{meta['torch']})", "", "## (a) step speed (d_in 768, k 32, fp32 Adam; median of "
        "interleaved repeats, min/max range)", "", md_table(speed, cols), "",
        f"## (b) time to held-out FVU {fvu_cfg['target']} (each library's defaults; d_in "
        f"{fvu_cfg['d']}, {fvu_cfg['n']} latents, batch {fvu_cfg['batch']})", "",
        md_table(fvu, fcols), "", "## (c) bf16-screened support (sparseae "
        "with `bf16_screen=True`: bf16 encoder product for the choice, fp32 values; "
        "sparsify under CPU bf16 autocast; interleaved as in (a))", "",
        md_table(screen, cols + ["recomputed_rows"]),
    ])  # fmt: skip
    print(text)
    write_results("sae_vs_peers", text, {"meta": meta, "speed": speed, "time_to_fvu": fvu,
                                         "screen": screen}, quick)  # fmt: skip


if __name__ == "__main__":
    main()
