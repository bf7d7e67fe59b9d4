"""Run by tests/test_architectures_resume.py under ``torchrun --nproc_per_node=2``: trains
each architecture of that test with DistributedDataParallel (gloo, CPU); every rank saves
its own final state, so the test can check that the ranks agree."""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors.torch import save_file

from sparseae.training import distributed
from sparseae.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_architectures_resume import KINDS, config, data, make  # noqa: E402


def main(out: Path) -> None:
    rank, world = distributed.init_from_env("cpu")
    assert world == 2
    x = data()
    state = {}
    for kind in KINDS:
        model = make(kind)
        Trainer(model, config(kind), progress=False).fit(x)
        state.update({f"{kind}.{k}": v.contiguous() for k, v in model.state_dict().items()})
    save_file(state, str(out / f"rank{rank}.safetensors"))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
