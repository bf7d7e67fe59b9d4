"""Multi-process data-parallel training with PyTorch's own DistributedDataParallel.

Launch any sparseae training with ``torchrun --nproc_per_node=N -m sparseae train ...``:
`init_from_env` joins the process group torchrun describes in the environment (gloo on CPU,
nccl on CUDA), the trainer wraps ``model.step`` in DDP so gradients are all-reduced during
backward, each rank reads its own chunk of every global batch (`sparseae.sources`), and only
rank 0 writes checkpoints, logs and the final model folder.
"""

from __future__ import annotations

import atexit
import gc
import os

import torch
from torch import Tensor, nn
from torch import distributed as dist

from sparseae.errors import ConfigError


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


def init_from_env(device: str = "auto") -> tuple[int, int]:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1); a no-op for a
    plain single process. Returns (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return rank_and_world()
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed: run a single process")
    use_cuda = torch.cuda.is_available() and device != "cpu"
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    atexit.register(shutdown)
    return rank_and_world()


def shutdown() -> None:
    """Leave the process group while the interpreter is fully alive. DDP wrappers sit in
    reference cycles; if the garbage collector only frees them during interpreter shutdown,
    gloo's worker threads are torn down then and abort the process ("terminate called without
    an active exception"), so collect them first."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def wrap_step(step: nn.Module, device: torch.device) -> nn.Module:
    """The trainer's step module (whose ``forward`` is the objective) as a DDP module. DDP
    broadcasts rank 0's weights at construction, so every rank starts from the same model.
    Buffers are not broadcast at every forward: they hold per-rank statistics (BatchTopK's
    running threshold) that rank 0's copy must not overwrite."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index or 0] if device.type == "cuda" else None
    params = inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {}
    no_sync = no_sync or {"broadcast_buffers": False}
    return DistributedDataParallel(step, device_ids=ids, **no_sync)


def sum_over_ranks(t: Tensor) -> Tensor:
    """The element-wise sum over ranks (one all-reduce, on a copy)."""
    out = t.clone()
    dist.all_reduce(out)
    return out


def any_over_ranks(flags: Tensor) -> Tensor:
    """Element-wise OR of a bool tensor over ranks (one all-reduce)."""
    as_float = flags.float()
    dist.all_reduce(as_float, op=dist.ReduceOp.MAX)
    return as_float > 0


def mean_over_ranks(loss_sum: Tensor, sums: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Epoch sums of the logged terms averaged over ranks (one all-reduce per epoch)."""
    names = list(sums)
    flat = torch.stack([loss_sum.float(), *(sums[k].float() for k in names)])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    return flat[0], {k: flat[i + 1] for i, k in enumerate(names)}


def gather_rng_states(state: Tensor, device: torch.device) -> dict[str, Tensor]:
    """Every rank's CPU RNG state (for exact resume of per-rank corruption noise). NCCL
    moves only CUDA tensors, so the bytes travel through ``device`` and come back."""
    on = state.to(device)
    states = [torch.empty_like(on) for _ in range(dist.get_world_size())]
    dist.all_gather(states, on)
    return {f"rng.torch.rank{r}": s.cpu() for r, s in enumerate(states)}
