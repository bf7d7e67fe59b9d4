"""Does ``torch.compile`` pay for sparseae's training steps here? Measured, not assumed.

For two workloads — document 003's KL sparse AE at batch 32 (overhead-bound) and a TopK SAE
(768 inputs, 4,096 latents, k 32, batch 1,024; arithmetic-bound, custom sparse autograd) —
times an eager training step against the same step with the loss compiled by
``torch.compile`` (inductor; backward through AOTAutograd), in alternating blocks so machine
noise hits both, and reports the median ms/step, the one-off compile time and the number of
steps the compile time takes to pay back. Writes benchmarks/results/compile_check.{md,json}.

    .venv/bin/python benchmarks/compile_check.py [--blocks 6] [--steps 200]

sparseae keeps only what wins: compile is not switched on by default unless this says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import sparseae
from sparseae.models.sae.model import SAE
from sparseae.sparsities import keras_kl_weight
from sparseae.training.optim import LeanAdam

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_results  # noqa: E402
from kl_fashion import kl_model  # noqa: E402


def workloads() -> dict:
    gen = torch.Generator().manual_seed(0)
    return {
        "KL sparse AE 784-100-300, batch 32": (
            lambda: kl_model(keras_kl_weight(0.05, 32)),
            torch.rand(32 * 64, 784, generator=gen),
            32,
        ),
        "TopK SAE 768x4096, k 32, batch 1024": (
            lambda: SAE(d_in=768, n_latents=4096, sparsity="topk", sparsity_params={"k": 32}),
            torch.randn(1024 * 4, 768, generator=gen),
            1024,
        ),
    }


def measure(build, data: torch.Tensor, batch: int, blocks: int, steps: int) -> dict:
    torch.manual_seed(0)
    models = {"eager": build(), "compiled": build()}
    opts = {name: LeanAdam(list(m.parameters()), lr=1e-4) for name, m in models.items()}
    fns = {
        "eager": lambda x: models["eager"].step(x).loss,
        "compiled": torch.compile(lambda x: models["compiled"].step(x).loss),
    }
    n_batches = data.shape[0] // batch

    def run(name: str, n: int, offset: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            j = (offset + i) % n_batches
            loss = fns[name](data[j * batch : (j + 1) * batch])
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    run("compiled", 3, 0)  # compiles forward and backward
    compile_s = time.perf_counter() - t0
    run("eager", 3, 0)
    per_step: dict[str, list[float]] = {"eager": [], "compiled": []}
    for b in range(blocks):
        for name in ("eager", "compiled") if b % 2 == 0 else ("compiled", "eager"):
            per_step[name].append(run(name, steps, b * steps) / steps * 1e3)
    eager = statistics.median(per_step["eager"])
    compiled = statistics.median(per_step["compiled"])
    saved = (eager - compiled) / 1e3
    return {
        "eager_ms_per_step": eager,
        "compiled_ms_per_step": compiled,
        "speedup": eager / compiled,
        "compile_seconds": compile_s,
        "payback_steps": compile_s / saved if saved > 0 else None,
        "blocks_ms": per_step,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--steps", type=int, default=200, help="steps per timed block")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for name, (build, data, batch) in workloads().items():
        steps = args.steps if batch <= 32 else max(5, args.steps // 20)
        try:
            rows[name] = measure(build, data, batch, args.blocks, steps)
        except Exception as exc:  # a compile failure is a result too
            rows[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        print(name, {k: v for k, v in rows[name].items() if k != "blocks_ms"}, flush=True)
    lines = [
        "# torch.compile vs eager training steps",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, sparseae "
        f"{sparseae.__version__}; median over {args.blocks} alternating blocks.",
        "",
        "| workload | eager ms/step | compiled ms/step | speed-up | compile s | "
        "steps to pay back |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"| {name} | - | - | compile failed: {r['error']} | - | - |")
            continue
        payback = f"{r['payback_steps']:.0f}" if r["payback_steps"] else "never"
        lines.append(
            f"| {name} | {r['eager_ms_per_step']:.2f} | {r['compiled_ms_per_step']:.2f} | "
            f"{r['speedup']:.2f}x | {r['compile_seconds']:.1f} | {payback} |"
        )
    table = "\n".join(lines)
    print(table)
    write_results("compile_check", table, rows, quick=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
