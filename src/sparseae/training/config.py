"""`TrainConfig`: how a model is trained, for every model kind.

The dictionary tricks (unit-norm decoder atoms, decoder-bias initialisation, dead-latent
tracking, AuxK, resampling, sparsity warm-up) are settings of training, not of a model: they
apply to every model with a linear dictionary (`sparseae.models.base.Atoms`)."""

from __future__ import annotations

from dataclasses import dataclass

from sparseae.config import Config, OneOf, Optional, Range
from sparseae.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine", "linear", "onecycle")
B_DEC_INITS = ("none", "mean", "geometric_median")
ATOM_INITS = ("model", "data")
OPTIMIZERS = ("adam", "sgd")
#: settings a resumed run may change when asked to (they do not alter what was trained)
RESUMABLE_CHANGES = ("epochs", "eval_batch_size", "num_threads", "device")


@dataclass(frozen=True)
class TrainConfig(Config):
    """``weight_decay`` is L2 on weight matrices (not biases), added to the gradient as
    Adam's coupled L2 does, i.e. the textbook 'AE + L2'. ``optimizer`` is Adam (``betas``,
    ``eps``) or SGD with ``sgd_momentum`` (the k-sparse paper's; ``sgd_momentum`` is used by SGD
    only, ``betas`` and ``eps`` by Adam only, as scikit-learn's MLP solvers do).

    Dictionary settings (None = the model's own default: on for an SAE, off otherwise):
    ``unit_norm_decoder`` keeps atoms at unit norm and removes the gradient parallel to
    them; ``b_dec_init`` sets the decoder bias from the data before the first step;
    ``dead_after`` counts a latent dead after that many training samples without firing
    (0: no tracking); ``aux_k`` > 0 adds Gao et al.'s AuxK loss over the dead latents,
    weight ``aux_weight``; ``resample_every`` > 0 re-initialises dead latents every that
    many steps, their encoder rows at ``resample_scale`` of the live rows' mean norm (on a
    tied model that row is the atom, and the scale matters: benchmarks/README.md's k-sparse
    runs); ``sparsity_warmup`` > 0 moves k down from ``k_start`` (default 4k), or a
    penalty weight up from 0, linearly over that many steps.

    Resuming refuses a changed setting unless it is named in ``allow_changes`` and is one of
    `RESUMABLE_CHANGES` (more epochs, another eval batch or thread count).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    sgd_momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    # Adam epsilon; None: the model's default (SAE: 1e-8, PyTorch's), else Keras' 1e-7
    eps: float | None = None
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    # the last lr_decay_steps steps scale the schedule's lr linearly down to 0 (SAELens'
    # lr_decay_steps); on the k-sparse MNIST recipe, a decay over the steps after k's
    # warm-up beat a constant lr by 0.1-0.2 points of probe error (benchmarks/README.md)
    lr_decay_steps: int = 0
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    max_grad_norm: float | None = None
    eval_batch_size: int = 4096
    # torch.compile the training step: benchmarks/compile_check.py measured 1.35x on the
    # small-batch MLP recipes after a one-off compile (~20 s cold on 2 cores) and nothing
    # on the arithmetic-bound SAE step, so it is opt-in
    compile: bool = False
    # use the model's hand-derived step where it offers one (the MLP autoencoder's: same
    # loss and gradients as autograd, ~2x faster at batch 32); False forces autograd
    manual_backward: bool = True
    unit_norm_decoder: bool | None = None
    b_dec_init: str | None = None
    atom_init: str = "model"
    atom_init_norm: float | None = None
    dead_after: int = 0
    aux_k: int = 0
    aux_weight: float = 1.0 / 32
    resample_every: int = 0
    resample_scale: float = 0.2
    sparsity_warmup: int = 0
    k_start: int | None = None
    # divergence and collapse: a loss above diverge_factor x the first step's loss stops the
    # run (None: only NaN/inf stop it); collapse_check stops a run whose codes are all zero
    # at the end of an epoch (every latent dead)
    diverge_factor: float | None = 1000.0
    collapse_check: bool = True

    constraints = {
        "epochs": Range(int, 1),
        "batch_size": Range(int, 1),
        "lr": Range(float, 0, low_open=True),
        "optimizer": OneOf(*OPTIMIZERS),
        "sgd_momentum": Range(float, 0, 1, high_open=True),
        "eps": Optional(Range(float, 0, low_open=True)),
        "weight_decay": Range(float, 0),
        "lr_schedule": OneOf(*LR_SCHEDULES),
        "warmup_steps": Range(int, 0),
        "lr_decay_steps": Range(int, 0),
        "seed": Range(int, 0, 2**63 - 1),
        "num_threads": Optional(Range(int, 1)),
        "max_grad_norm": Optional(Range(float, 0, low_open=True)),
        "eval_batch_size": Range(int, 1),
        "compile": OneOf(True, False),
        "manual_backward": OneOf(True, False),
        "unit_norm_decoder": Optional(OneOf(True, False)),
        "b_dec_init": Optional(OneOf(*B_DEC_INITS)),
        "atom_init": OneOf(*ATOM_INITS),
        "atom_init_norm": Optional(Range(float, 0, low_open=True)),
        "dead_after": Range(int, 0),
        "aux_k": Range(int, 0),
        "aux_weight": Range(float, 0),
        "resample_every": Range(int, 0),
        "resample_scale": Range(float, 0, low_open=True),
        "sparsity_warmup": Range(int, 0),
        "k_start": Optional(Range(int, 1)),
        "diverge_factor": Optional(Range(float, 1, low_open=True)),
        "collapse_check": OneOf(True, False),
    }

    def __post_init__(self) -> None:
        if isinstance(self.betas, list | tuple) and len(self.betas) == 2:
            object.__setattr__(self, "betas", tuple(self.betas))
        super().__post_init__()
        b = self.betas
        if not (
            isinstance(b, tuple)
            and len(b) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in b)
            and all(0.0 <= v < 1.0 for v in b)
        ):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {b!r}")
        object.__setattr__(self, "betas", (float(b[0]), float(b[1])))
        if self.atom_init_norm is not None and self.atom_init != "data":
            raise ConfigError("atom_init_norm applies to atom_init='data': set both or neither")
        if self.aux_k and not self.dead_after:
            raise ConfigError("aux_k > 0 needs dead-latent tracking: set dead_after > 0")
        if self.resample_every and not self.dead_after:
            raise ConfigError("resample_every > 0 needs dead-latent tracking: set dead_after > 0")
