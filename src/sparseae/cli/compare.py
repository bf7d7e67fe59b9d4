"""``sparseae compare``: plain AE, L2, Ng's KL sparse AE, Arora et al.'s neural sparse coding
and Makhzani & Frey's k-sparse AE on one dataset, as one HTML report with a verdict."""

from __future__ import annotations

import argparse
from typing import Any

from sparseae.cli import options


def _methods(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def add_parser(sub: Any) -> None:
    from sparseae.experiments.settings import METHODS, CompareSettings

    d = CompareSettings()  # one place for the defaults

    p = sub.add_parser(
        "compare",
        help="train five sparse-coding methods and write an HTML report (the main job)",
        description=(
            "Train plain AE, AE + L2, KL sparse AE, Arora et al.'s neural sparse coding and the "
            "k-sparse AE with one hidden size and one budget; write report.html (self-contained), "
            "PNG figures and results.json/csv."
        ),
    )
    options.add_data_options(p)
    g = p.add_argument_group("study")
    g.add_argument(
        "--methods",
        type=_methods,
        default=METHODS,
        help=f"comma-separated subset of {','.join(METHODS)} (default: all)",
    )
    g.add_argument(
        "--n-latents",
        type=options.positive_int,
        default=d.hidden,
        help="code size (hidden units, latents) shared by every method (default: %(default)s)",
    )
    # the earlier spelling (train's --hidden lists layer sizes, so it cannot mean this here)
    g.add_argument(
        "--hidden",
        dest="n_latents",
        type=options.positive_int,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    g.add_argument(
        "--epochs", type=options.positive_int, default=d.epochs, help="default: %(default)s"
    )
    g.add_argument(
        "--batch-size", type=options.positive_int, default=d.batch_size, help="default: %(default)s"
    )
    g.add_argument(
        "--lr", type=options.positive_float, default=d.lr, help="Adam lr (default: %(default)s)"
    )
    g.add_argument(
        "--weight-decay",
        type=options.nonnegative_float,
        default=d.weight_decay,
        help="L2 weight decay of the l2 method (default: %(default)s)",
    )
    g.add_argument("--rho", type=float, default=d.rho, help="kl target rate (default: %(default)s)")
    g.add_argument(
        "--weight",
        type=options.nonnegative_float,
        default=d.kl_weight,
        help="kl penalty weight, as train's --weight (default: %(default)s)",
    )
    for old in ("--kl-weight", "--beta"):  # earlier spellings of --weight, kept working
        g.add_argument(
            old,
            dest="weight",
            type=options.nonnegative_float,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    g.add_argument(
        "--k",
        type=options.positive_int,
        default=d.k,
        help="topk active units; also arora's target L0 (default: %(default)s)",
    )
    g.add_argument("--alpha", type=float, default=d.alpha, help="topk: alpha*k at inference")
    g.add_argument(
        "--arora-lr",
        type=options.positive_float,
        default=d.arora_lr,
        help="learning rate eta of the sparse-coding rule (default: %(default)s)",
    )
    g.add_argument(
        "--sweep",
        action=argparse.BooleanOptionalAction,
        default=d.sweep,
        help="also train each method at two more values of its sparsity knob (topk: k; "
        "arora: target L0; kl: rho; l2: weight decay) for the error-vs-L0 trade-off curve; "
        "about 1.5x the run time (default: on; --no-sweep: one point per method)",
    )
    g.add_argument("--seed", type=options.nonnegative_int, default=0)
    g.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default="reports/compare", help="output folder (reports/compare)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparseae.experiments.compare import CompareSettings, run_compare
    from sparseae.report.provenance import invoked_command

    settings = CompareSettings(
        methods=args.methods,
        hidden=args.n_latents,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        rho=args.rho,
        kl_weight=args.weight,
        k=args.k,
        alpha=args.alpha,
        arora_lr=args.arora_lr,
        seed=args.seed,
        sweep=args.sweep,
    )
    data = options.load_data(args)
    print(
        f"data  {data.name}: train {len(data.train)}, val {len(data.val)}, "
        f"test {len(data.test)}, {data.d_in} features",
        flush=True,
    )
    summary = run_compare(
        data,
        settings,
        args.out,
        progress=False if args.no_progress else None,
        log=lambda m: print(m, flush=True),
        dataset_label=Path(args.dataset).name if Path(args.dataset).exists() else data.name,
        command=invoked_command(),
    )
    cols = [
        "method",
        "test_mse",
        "l0",
        "l0_above_0.1",
        "frac_inactive",
        "dead_latents",
        "train_seconds",
        "epoch_seconds",
        "parameters",
    ]
    print()
    print(options.format_table(summary["results"], cols))
    print(f"\n{summary['verdict']}")
    print(f"\nreport: {summary['report']}")
    return 0
