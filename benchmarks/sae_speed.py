"""Training speed of sparseae's SAE (sparse TopK path) vs a plain dense PyTorch TopK SAE.

Both learn the same configuration on the same synthetic activations (sparse combinations of
a random unit-norm ground-truth dictionary plus noise), in the same process, alternating
implementations so machine noise hits both. The dense peer is what one writes first: dense
matmul encode, topk, scatter to a dense code, dense matmul decode, autograd for the rest.
Both use the same torch.optim.Adam (fused where available). Prints samples/s, the
ratio, peak RSS and final losses, and writes benchmarks/results/sae_speed.{md,json}.

    .venv/bin/python benchmarks/sae_speed.py            # d_in 768, 16384 and 65536 latents
    .venv/bin/python benchmarks/sae_speed.py --quick    # smoke run, small sizes
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from sparseae.models.sae.model import SAE

RESULTS = Path(__file__).parent / "results"


class DenseTopKSAE(nn.Module):
    """The straightforward reference implementation."""

    def __init__(self, d_in: int, n: int, k: int) -> None:
        super().__init__()
        self.k = k
        w = torch.randn(n, d_in)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.t().clone())
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        vals, idx = pre.topk(self.k, dim=-1)
        h = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
        return F.mse_loss(h @ self.W_dec + self.b_dec, x)


def synthetic(n: int, d_in: int, n_true: int, k_true: int, gen: torch.Generator) -> torch.Tensor:
    atoms = torch.randn(n_true, d_in, generator=gen)
    atoms /= atoms.norm(dim=1, keepdim=True)
    idx = torch.randint(0, n_true, (n, k_true), generator=gen)
    coef = torch.rand(n, k_true, generator=gen) * 2
    x = torch.einsum("nk,nkd->nd", coef, atoms[idx]) if n * k_true * d_in < 2e8 else None
    if x is None:  # chunk to bound memory
        x = torch.cat(
            [
                torch.einsum("nk,nkd->nd", coef[i : i + 1024], atoms[idx[i : i + 1024]])
                for i in range(0, n, 1024)
            ]
        )
    return x + 0.05 * torch.randn(n, d_in, generator=gen)


def make_adam(model: nn.Module) -> torch.optim.Optimizer:
    """Fused Adam where this torch has it on this device (same optimizer for both sides)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=1e-3)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(d_in: int, n: int, k: int, batch: int, steps: int, warmup: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    data = synthetic(batch * 4, d_in, max(n // 4, 64), 8, gen)
    torch.manual_seed(0)
    ours = SAE(d_in=d_in, n_latents=n, sparsity="topk", sparsity_params={"k": k})
    ref = DenseTopKSAE(d_in, n, k)
    mine = ref.state_dict()
    ref.load_state_dict({k_: v for k_, v in ours.state_dict().items() if k_ in mine})
    impls = {
        "sparseae": (ours, lambda x: ours.step(x).loss),
        "dense": (ref, ref.loss),
    }
    opts = {name: make_adam(m) for name, (m, _) in impls.items()}
    times = {name: 0.0 for name in impls}
    losses: dict[str, float] = {}
    n_batches = data.shape[0] // batch
    for it in range(warmup + steps):
        x = data[(it % n_batches) * batch : (it % n_batches + 1) * batch]
        for name, (_, loss_fn) in impls.items():
            t0 = time.perf_counter()
            loss = loss_fn(x)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            dt = time.perf_counter() - t0
            if it >= warmup:
                times[name] += dt
            losses[name] = float(loss.detach())
    sps = {name: steps * batch / t for name, t in times.items()}
    return {
        "d_in": d_in,
        "n_latents": n,
        "k": k,
        "batch": batch,
        "steps": steps,
        "sparseae_samples_per_s": sps["sparseae"],
        "dense_samples_per_s": sps["dense"],
        "speedup": sps["sparseae"] / sps["dense"],
        "final_loss_sparseae": losses["sparseae"],
        "final_loss_dense": losses["dense"],
        "peak_rss_mb_process": peak_rss_mb(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    a = p.parse_args()
    if a.quick:
        configs = [(128, 2048, 16)]
        batch, steps, warmup = a.batch or 512, a.steps or 5, 2
    else:
        configs = [(768, 16384, 32), (768, 65536, 32)]
        batch, steps, warmup = a.batch or 4096, a.steps or 5, 1
    rows = []
    for d_in, n, k in configs:
        r = run_one(d_in, n, k, batch, steps, warmup)
        rows.append(r)
        print(
            f"d_in {d_in} n {n} k {k} batch {batch}: sparseae {r['sparseae_samples_per_s']:.0f}"
            f" samples/s, dense {r['dense_samples_per_s']:.0f} samples/s, speedup "
            f"{r['speedup']:.2f}x, peak RSS {r['peak_rss_mb_process']:.0f} MB, final loss "
            f"{r['final_loss_sparseae']:.4f} vs {r['final_loss_dense']:.4f}",
            flush=True,
        )
    meta = {
        "device": "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "quick": a.quick,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "sae_speed_quick" if a.quick else "sae_speed"
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# SAE training speed, CPU ({meta['threads']} threads, torch {meta['torch']})",
        "",
        "| d_in | n_latents | k | batch | sparseae samples/s | dense samples/s | speedup |"
        " peak RSS MB (cumulative) | final loss sparseae | final loss dense |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['d_in']} | {r['n_latents']} | {r['k']} | {r['batch']} | "
            f"{r['sparseae_samples_per_s']:.0f} | {r['dense_samples_per_s']:.0f} | "
            f"{r['speedup']:.2f}x | {r['peak_rss_mb_process']:.0f} | "
            f"{r['final_loss_sparseae']:.4f} | {r['final_loss_dense']:.4f} |"
        )
    lines += ["", "GPU: not measured (no device lent to this task)."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
