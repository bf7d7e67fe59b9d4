"""Argument types and option groups shared by several sub-commands, so every command spells
the same setting the same way and rejects bad values with the same clear message."""

from __future__ import annotations

import argparse
from typing import Any

from sparseae.catalog import activation_names, backbone_names, corruption_names, sparsity_names
from sparseae.errors import ConfigError


def _number(kind: type, ok: Any, what: str) -> Any:
    """An argparse type: ``kind(text)`` that is finite and passes ``ok``, else one message."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
nonnegative_float = _number(float, lambda v: v >= 0, "a number >= 0")
unit_interval_open = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
finite_float = _number(float, lambda v: True, "a finite number")


def true_or_false(text: str) -> bool:
    """'true' / 'false' (any case), as JSON and the configs spell them."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def int_list(text: str) -> tuple[int, ...]:
    """'100,300' -> (100, 300); an empty item ('100,,300') is a typo, not a skip."""
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 100,300, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 100,300, got {text!r}"
        )
    return values


def add_data_options(parser: argparse.ArgumentParser, default: str = "digits") -> None:
    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=default,
        help="digits (bundled, no download), mnist, fashion-mnist, kmnist, or a path to a "
        ".npy/.npz/.csv file, or a shard folder (docs/SHARDS.md; streamed) (default: %(default)s)",
    )
    g.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the IDX .gz files (or a parent with mnist/, fashion-mnist/); "
        "else $SPARSEAE_DATA, the cache, /usr/share/datasets, then a download",
    )
    g.add_argument("--no-download", action="store_true", help="never download data")
    g.add_argument(
        "--limit", type=positive_int, default=None, help="use only the first N train/val/test rows"
    )
    g.add_argument(
        "--val-size",
        type=nonnegative_int,
        default=None,
        help="validation rows taken from the start of the training set (mnist-like default "
        "5000, the split of Géron's Keras autoencoder examples)",
    )
    g.add_argument(
        "--label-column",
        default="auto",
        metavar="NAME|INDEX|none",
        help="CSV column (header name or 0-based index) holding labels; none: no labels, every "
        "column a feature (default: auto: a column headed label, labels, target, targets, "
        "class or y, any case, with a notice on stderr; two such columns are refused)",
    )
    g.add_argument(
        "--scale",
        choices=("unit", "minmax", "standard", "none"),
        default=None,
        help="input scaling (default: unit for images, minmax for user arrays)",
    )


def load_data(args: argparse.Namespace) -> Any:
    from sparseae.data.shards import is_shard_folder, shard_data

    if is_shard_folder(args.dataset):  # streamed from disk by the trainer, never loaded whole
        return shard_data(args.dataset)
    from sparseae.data import load_dataset

    label: Any = args.label_column
    if isinstance(label, str) and label.lstrip("-").isdigit():
        label = int(label)
    elif isinstance(label, str) and label.lower() == "none":
        label = None
    data = load_dataset(
        args.dataset,
        data_dir=args.data_dir,
        download=not args.no_download,
        val_size=args.val_size,
        limit=args.limit,
        scale=args.scale,
        label_column=label,
        seed=getattr(args, "seed", 0),
    )
    if label == "auto" and data.label_column is not None:
        import sys

        print(
            f"using column {data.label_column!r} as labels; pass --label-column none to keep "
            "it as a feature",
            file=sys.stderr,
        )
    return data


def load_data_for_model(args: argparse.Namespace, model: Any) -> Any:
    """Data for a saved model: where the model carries the scaling fitted at training time,
    the loader must not fit another one on this file (raw values, the model scales them)."""
    from pathlib import Path

    transform = getattr(model, "input_transform", None)
    if transform is not None and transform.active and args.scale is None:
        args.scale = "none" if Path(args.dataset).exists() else "unit"
    return load_data(args)


def is_user_file(dataset: str) -> bool:
    """Whether --dataset names the user's own file (or folder) rather than a named set: the
    commands default to every row in file order only for the user's own files."""
    from sparseae.data.named import NAMED_DATASETS, normalize_name

    return normalize_name(str(dataset)) not in NAMED_DATASETS


def add_split_option(parser: argparse.ArgumentParser, default_text: str) -> None:
    """``--split``: one spelling for the commands that process one part of a dataset."""
    from sparseae.data.core import SPLIT_CHOICES

    parser.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default=None,
        help="rows to process: a split, or all (every row in file order); results are keyed "
        "by the source's 0-based row numbers (a user file's data rows, header excluded; for "
        "mnist-like sets and .npz files with x_test, train/val rows number the training file "
        f"and test rows the test file) (default: {default_text})",
    )


def select_rows(data: Any, which: str, explicit: bool) -> tuple[Any, Any]:
    """(Split, split name of each row) for --split; an empty chosen split is an error with
    the fix, except that the default test split falls back to val (a file split 90/10)."""
    from sparseae.data.core import Dataset
    from sparseae.errors import DataError

    if not isinstance(data, Dataset):
        raise DataError(
            f"{data.name}: a shard folder is streamed for training only; pass the .npy, .npz "
            "or .csv file (or a dataset name) to this command"
        )
    split, names = data.select(which)
    if len(split) == 0 and which == "test" and not explicit and len(data.val):
        split, names = data.select("val")
    if len(split) == 0:
        raise DataError(f"the {which} split of {data.name} is empty: pass --split all or another")
    return split, names


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--backbone", choices=backbone_names(), default="mlp", help="default: mlp")
    g.add_argument(
        "--hidden",
        type=int_list,
        default=None,
        help="encoder layer sizes, the last one being the code (latent) layer; the decoder "
        "mirrors them. 100,300 = 784-100-300-100-784 (default: 64,16). lstm: LSTM sizes "
        "(100,30 = Géron's recurrent autoencoder). conv: omit for the flattened last feature "
        "map as the code, or one size N for a linear bottleneck to N latents",
    )
    g.add_argument(
        "--n-latents",
        type=positive_int,
        default=None,
        help="code (dictionary) size; with it, --hidden lists only the layers between input "
        "and code (without it, the last --hidden size is the code)",
    )
    g.add_argument(
        "--conv-channels",
        type=int_list,
        default=None,
        help="conv backbone: channels of the conv+2x2-pool stages (default: 16,32,64)",
    )
    g.add_argument(
        "--lstm-code-head",
        choices=("lstm", "linear"),
        default=None,
        help="lstm backbone: the code is the last LSTM's state (lstm, default) or a linear "
        "layer on it (linear: an unbounded pre-activation, for kl/l1 codes)",
    )
    g.add_argument(
        "--activation",
        choices=activation_names(),
        default="relu",
        help="hidden-layer activation (default: relu)",
    )
    g.add_argument(
        "--code-activation",
        choices=activation_names(),
        default=None,
        help="activation of the code layer before sparsity (default: sigmoid for kl, "
        "linear for topk, else the hidden activation)",
    )
    g.add_argument(
        "--output-activation",
        choices=("sigmoid", "linear"),
        default=None,
        help="default: sigmoid for bce or [0,1] data, else linear",
    )
    g.add_argument(
        "--tied",
        action="store_true",
        help="decoder reuses transposed encoder weights (mlp, conv)",
    )
    g.add_argument("--loss", choices=("mse", "bce"), default="mse", help="default: mse")
    add_sparsity_options(parser)
    c = parser.add_argument_group("corruption (denoising)")
    c.add_argument("--corruption", choices=corruption_names(), default="none", help="default: none")
    c.add_argument("--noise-sigma", type=nonnegative_float, default=None, help="gaussian sigma")
    c.add_argument("--corruption-p", type=finite_float, default=None, help="dropout/masking rate")


#: every sparsity parameter's one CLI spelling: flag -> (type, help); generated into every
#: command that takes a sparsity, and checked against the chosen mechanism's parameters
SPARSITY_FLAGS: dict[str, tuple[Any, str]] = {
    "k": (
        positive_int,
        "topk/batchtopk: active latents per input (default 32; sparse coding: its target L0)",
    ),
    "alpha": (finite_float, "topk: inference keeps alpha*k latents (Makhzani & Frey; default 1)"),
    "relu": (
        true_or_false,
        "topk: true clamps kept values at 0 (default); false keeps them signed, the k-sparse "
        "paper's linear code",
    ),
    "weight": (
        nonnegative_float,
        "l1/kl/jumprelu penalty weight (l1 1e-3, kl 0.1, jumprelu 1e-3); see --penalty-scale",
    ),
    "rho": (finite_float, "kl: target mean activation in (0, 1) (default 0.05)"),
    "momentum": (finite_float, "batchtopk: EMA rate of the inference threshold (default 0.01)"),
    "bandwidth": (positive_float, "jumprelu: width of the STE window (default 1e-3)"),
    "threshold_init": (positive_float, "jumprelu: initial threshold (default 1e-3)"),
    "p": (positive_float, "lp: the exponent, in (0, 1] (default 1: L1)"),
    "p_end": (positive_float, "lp: the exponent after annealing (Karvonen et al. 2024)"),
    "anneal_steps": (nonnegative_int, "lp: steps over which p moves to --p-end (default 0)"),
}


def add_sparsity_options(parser: argparse.ArgumentParser, default: str = "none") -> None:
    s = parser.add_argument_group("sparsity")
    s.add_argument(
        "--sparsity",
        choices=sparsity_names(),
        default=None,
        help=f"mechanism (default: {default}; topk for --model sae)",
    )
    for name, (kind, text) in SPARSITY_FLAGS.items():
        s.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    for old in ("--beta", "--kl-weight"):  # earlier spellings of --weight, kept working
        s.add_argument(old, dest="weight", type=nonnegative_float, help=argparse.SUPPRESS)
    s.add_argument(
        "--penalty-scale",
        choices=("sparseae", "keras"),
        default="sparseae",
        help="keras: divide the kl weight by the batch size as Keras activity regularizers do, "
        "so a Keras recipe's weight can be passed unchanged (default: sparseae)",
    )


def sparsity_params_from_args(args: argparse.Namespace, sparsity: str) -> dict[str, Any]:
    """The chosen mechanism's parameters from the flags given; a flag it does not take is
    an error naming it."""
    from sparseae.sparsities import sparsity_class

    params = {n: getattr(args, n) for n in SPARSITY_FLAGS if getattr(args, n, None) is not None}
    if sparsity == "kl" and args.penalty_scale == "keras":
        params["weight"] = params.get("weight", 0.1) / args.batch_size
    allowed = set(sparsity_class(sparsity).param_names)
    stray = set(params) - allowed
    if stray:
        flags = ", ".join("--" + p.replace("_", "-") for p in sorted(stray))
        raise ConfigError(f"{flags} does not apply to --sparsity {sparsity}")
    return params


def model_config_from_args(
    args: argparse.Namespace, d_in: int, input_shape: Any = None, data_scale: str = "unit"
) -> Any:
    from sparseae.models.autoencoder.config import ModelConfig

    hidden, n_latents, backbone_params = _backbone_shape(args, input_shape)
    sparsity = args.sparsity or "none"
    code_act = args.code_activation
    if code_act is None:
        code_act = {"kl": "sigmoid", "topk": "linear"}.get(sparsity, args.activation)
    bounded = args.loss == "bce" or data_scale in ("unit", "minmax")
    out_act = args.output_activation or ("sigmoid" if bounded else "linear")
    params = sparsity_params_from_args(args, sparsity)
    corr: dict[str, Any] = {}
    if args.noise_sigma is not None:
        corr["sigma"] = args.noise_sigma
    if args.corruption_p is not None:
        corr["p"] = args.corruption_p
    return ModelConfig(
        d_in=d_in,
        n_latents=n_latents,
        hidden=tuple(hidden),
        backbone=args.backbone,
        activation=args.activation,
        code_activation=code_act,
        output_activation=out_act,
        tied=args.tied,
        loss=args.loss,
        sparsity=sparsity,
        sparsity_params=params,
        corruption=args.corruption,
        corruption_params=corr,
        input_shape=input_shape,
        backbone_params=backbone_params,
    )


def _backbone_shape(args: argparse.Namespace, input_shape: Any) -> tuple[tuple, int, dict]:
    """(hidden, n_latents, backbone_params) from --hidden and the backbone's own flags."""
    params: dict[str, Any] = {}
    if args.conv_channels is not None:
        if args.backbone != "conv":
            raise ConfigError("--conv-channels applies to --backbone conv only")
        params["channels"] = args.conv_channels
    if args.lstm_code_head is not None:
        if args.backbone != "lstm":
            raise ConfigError("--lstm-code-head applies to --backbone lstm only")
        params["code_head"] = args.lstm_code_head
    if args.backbone == "conv":
        from sparseae.models.autoencoder.backbones.conv import (
            DEFAULT_CHANNELS,
            conv_code_size,
            image_dims,
        )

        if args.hidden is not None and len(args.hidden) > 1:
            raise ConfigError(
                "--backbone conv takes at most one --hidden size (a linear bottleneck); "
                "set the feature maps with --conv-channels"
            )
        if args.hidden:
            return (), args.hidden[0], params
        if input_shape is None:
            image_dims(None, 0)  # raises the 'needs image data' error
        return (
            (),
            conv_code_size(tuple(input_shape), params.get("channels", DEFAULT_CHANNELS)),
            params,
        )
    n_latents = getattr(args, "n_latents", None)
    if n_latents is not None:  # --hidden: the layers between input and code, as ModelConfig
        return tuple(args.hidden or ()), n_latents, params
    # without --n-latents, the last --hidden size is the code (the older spelling)
    *hidden, n_latents = args.hidden if args.hidden is not None else (64, 16)
    return tuple(hidden), n_latents, params


def add_train_options(parser: argparse.ArgumentParser) -> None:
    from sparseae.training.config import LR_SCHEDULES, OPTIMIZERS

    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=10, help="default: 10")
    g.add_argument("--batch-size", type=positive_int, default=32, help="default: 32")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (1e-3)")
    g.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="adam",
        help="adam, or sgd with --sgd-momentum (the k-sparse paper's; default: adam)",
    )
    g.add_argument(
        "--sgd-momentum", type=unit_interval_open, default=0.9, help="SGD momentum (default 0.9)"
    )
    g.add_argument(
        "--weight-decay",
        type=nonnegative_float,
        default=0.0,
        help="L2 weight decay on weight matrices (default: 0)",
    )
    g.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default="constant", help="default: constant"
    )
    g.add_argument("--warmup-steps", type=nonnegative_int, default=0, help="lr warm-up steps")
    g.add_argument(
        "--lr-decay-steps",
        type=nonnegative_int,
        default=0,
        help="the last N steps take the lr linearly down to 0 (default: 0, none)",
    )
    g.add_argument("--max-grad-norm", type=positive_float, default=None, help="clip gradients")
    g.add_argument("--seed", type=nonnegative_int, default=0, help="default: 0")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--threads", type=positive_int, default=None, help="CPU threads for PyTorch")
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step (faster small-batch MLP training after a "
        "one-off compile of up to ~20 s; needs a C++ compiler, else falls back)",
    )
    g.add_argument(
        "--autograd",
        action="store_true",
        help="train MLP autoencoders through autograd instead of sparseae's hand-derived "
        "forward/backward step (same gradients, about half the speed at batch 32)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--diverge-factor",
        type=positive_float,
        default=1000.0,
        help="stop when the loss exceeds this many times its starting value (default 1000)",
    )
    g.add_argument(
        "--no-collapse-check",
        action="store_true",
        help="do not stop a run whose codes are all zero (every latent dead) after an epoch",
    )
    _add_dictionary_options(parser)


def _add_dictionary_options(parser: argparse.ArgumentParser) -> None:
    from sparseae.training.config import ATOM_INITS, B_DEC_INITS

    d = parser.add_argument_group(
        "dictionary training (models with a linear dictionary: sae, one-layer mlp autoencoders)"
    )
    norm = d.add_mutually_exclusive_group()
    norm.add_argument(
        "--unit-norm-decoder",
        dest="unit_norm_decoder",
        action="store_true",
        default=None,
        help="keep decoder atoms at unit norm (default for --model sae)",
    )
    norm.add_argument(
        "--free-decoder-norm",
        dest="unit_norm_decoder",
        action="store_false",
        help="do not keep decoder atoms at unit norm",
    )
    d.add_argument(
        "--b-dec-init",
        choices=B_DEC_INITS,
        default=None,
        help="decoder bias from the data before training (default: geometric_median for "
        "--model sae, else none)",
    )
    d.add_argument(
        "--atom-init",
        choices=ATOM_INITS,
        default="model",
        help="data: start each atom at a random training input minus the decoder bias, so "
        "far fewer latents start silent (default: model, its random initialisation)",
    )
    d.add_argument(
        "--atom-init-norm",
        type=positive_float,
        default=None,
        help="the atoms' norm under --atom-init data (default: the model's initial norms)",
    )
    d.add_argument(
        "--dead-after",
        type=nonnegative_int,
        default=0,
        help="training samples without firing before a latent counts as dead (0: no tracking)",
    )
    d.add_argument("--aux-k", type=nonnegative_int, default=0, help="AuxK dead latents (0: off)")
    d.add_argument(
        "--aux-weight", type=nonnegative_float, default=1 / 32, help="AuxK weight (1/32)"
    )
    d.add_argument(
        "--resample-every",
        type=nonnegative_int,
        default=0,
        help="re-initialise dead latents every N steps (0: off)",
    )
    d.add_argument(
        "--resample-scale",
        type=positive_float,
        default=0.2,
        help="a resampled latent's encoder row norm, as a fraction of the live rows' mean (0.2)",
    )
    d.add_argument(
        "--sparsity-warmup",
        type=nonnegative_int,
        default=0,
        help="steps over which k falls from --k-start (default 4k) or the penalty rises from 0",
    )
    d.add_argument("--k-start", type=positive_int, default=None, help="k at step 0 of a warm-up")


def train_config_from_args(args: argparse.Namespace) -> Any:
    from sparseae.training.config import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        sgd_momentum=args.sgd_momentum,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        lr_decay_steps=args.lr_decay_steps,
        max_grad_norm=args.max_grad_norm,
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
        compile=args.compile,
        manual_backward=not args.autograd,
        unit_norm_decoder=args.unit_norm_decoder,
        b_dec_init=args.b_dec_init,
        atom_init=args.atom_init,
        atom_init_norm=args.atom_init_norm,
        dead_after=args.dead_after,
        aux_k=args.aux_k,
        aux_weight=args.aux_weight,
        resample_every=args.resample_every,
        resample_scale=args.resample_scale,
        sparsity_warmup=args.sparsity_warmup,
        k_start=args.k_start,
        diverge_factor=args.diverge_factor,
        collapse_check=not args.no_collapse_check,
    )


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table (no extra dependency) for final summaries."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    out = [line, sep]
    out += ["  ".join(v.rjust(w) for v, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(out)


def default_code_activation(sparsity: str, activation: str = "relu") -> str:
    """The code activation a sparsity gets when none is given: sigmoid for kl (it needs a
    code in (0, 1)), linear for topk (it selects on the signed pre-activation), else the
    hidden activation; the rule `model_config_from_args` applies for train."""
    return {"kl": "sigmoid", "topk": "linear"}.get(sparsity, activation)


def add_code_activation_option(parser: argparse.ArgumentParser | Any) -> None:
    """``--code-activation`` for commands that take a sparsity without every model flag
    (detect); same choices and spelling as train's."""
    parser.add_argument(
        "--code-activation",
        choices=activation_names(),
        default=None,
        help="activation of the code layer before sparsity (default: sigmoid for kl, "
        "linear for topk, else relu)",
    )
