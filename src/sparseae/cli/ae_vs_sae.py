"""``sparseae ae-vs-sae``: an undercomplete AE against the same network, L1-sparse."""

from __future__ import annotations

import argparse
from typing import Any

from sparseae.cli import options


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ae-vs-sae",
        help="undercomplete AE vs L1 sparse AE: which bottleneck neurons fire (HTML report)",
        description="Undercomplete vs sparse: train an undercomplete AE and the same network with "
        "an L1 activity penalty on the bottleneck; heatmaps of bottleneck activations for one "
        "test image per class, and the count of inactive neurons.",
    )
    options.add_data_options(p)
    g = p.add_argument_group("study")
    g.add_argument(
        "--hidden",
        type=options.int_list,
        default=(64, 16),
        help="encoder sizes, the last is the bottleneck (default: 64,16)",
    )
    g.add_argument(
        "--l1",
        type=options.nonnegative_float,
        default=1e-3,
        help="L1 activity penalty weight (Keras semantics; default: 1e-3)",
    )
    g.add_argument("--epochs", type=options.positive_int, default=30, help="default: 30")
    g.add_argument("--batch-size", type=options.positive_int, default=32, help="default: 32")
    g.add_argument("--lr", type=options.positive_float, default=1e-3, help="default: 1e-3")
    g.add_argument("--seed", type=options.nonnegative_int, default=0)
    g.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default="reports/ae-vs-sae", help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sparseae.experiments.ae_vs_sae import AEvsSAESettings, run_ae_vs_sae

    settings = AEvsSAESettings(
        hidden=args.hidden,
        l1=args.l1,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
    )
    data = options.load_data(args)
    summary = run_ae_vs_sae(
        data,
        settings,
        args.out,
        progress=False if args.no_progress else None,
        log=lambda m: print(m, flush=True),
    )
    print()
    print(
        options.format_table(
            summary["rows"],
            ["model", "test_mse", "inactive_per_input", "dead_for_every_input", "train_seconds"],
        )
    )
    print(f"\nsparse/undercomplete inactive ratio {summary['ratio_inactive']:.2f}")
    print(f"report: {summary['report']}")
    return 0
