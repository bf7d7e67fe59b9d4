"""`SAEConfig`: what a one-layer dictionary SAE is. How it is trained (unit-norm atoms,
dead latents, AuxK, warm-ups) is `sparseae.training.config.TrainConfig`'s business."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparseae.config import Config, OneOf, Optional, Range

#: training settings an older sparseae saved in the SAE's config; they never changed what a
#: saved model computes, so a loaded config drops them
LEGACY_TRAINING_KEYS = ("dead_after", "aux_k", "aux_weight")


@dataclass(frozen=True)
class SAEConfig(Config):
    """``code_activation`` is applied to the pre-activation before the sparsity, exactly as
    in the autoencoder family (relu by default: TopK, BatchTopK and JumpReLU SAEs as the
    papers define them; kl needs sigmoid). ``tied_init`` starts the encoder as the decoder's
    transpose. ``sparse_decode`` runs the TopK family through sparse kernels. ``bf16``
    autocasts the step (meant for CUDA; works on CPU too). ``bf16_screen`` (topk only) picks
    each training row's support from a bf16 encoder product and recomputes the kept values
    in fp32 (`models.sae.screen`: the fp32 support and values, the product at about twice the
    speed where bf16 is fast: AVX512-BF16 / AMX CPUs, GPUs). ``decoder_init_norm`` is each
    atom's norm at initialisation; None means 1.0, except under a penalty weighted by atom
    norms (``l1_decnorm``), whose decoder norm is free: there 0.1, the April 2024 update's
    recipe that SAELens and dictionary_learning follow (MiniLM's block, weight 3e-3: FVU
    0.141 at L0 52 against 0.150 at L0 72 from unit atoms). ``encoder_init_norm`` is each
    encoder row's norm at initialisation relative to its atom's: 0.1, as SAELens' 0.1
    heuristic, reaches a given FVU in fewer steps than 1.0 and closes the p-annealing gap
    to dictionary_learning (benchmarks/sae_vs_peers.py). Only initialisation reads these,
    so a config.json written before the fields existed loads to the same model."""

    d_in: int
    n_latents: int
    sparsity: str = "topk"
    sparsity_params: dict[str, Any] = field(default_factory=dict)  # topk: k=32 by default
    code_activation: str = "relu"
    tied_init: bool = True
    sparse_decode: bool = True
    bf16: bool = False
    bf16_screen: bool = False
    encoder_init_norm: float = 1.0
    decoder_init_norm: float | None = None

    constraints = {
        "d_in": Range(int, 1),
        "n_latents": Range(int, 1),
        "tied_init": OneOf(True, False),
        "sparse_decode": OneOf(True, False),
        "bf16": OneOf(True, False),
        "bf16_screen": OneOf(True, False),
        "encoder_init_norm": Range(float, 0, low_open=True),
        "decoder_init_norm": Optional(Range(float, 0, low_open=True)),
    }
