"""What ``sparseae train`` builds from its flags: the model of each kind, the inputs in the
model's space, and the final metrics table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from sparseae.cli import options
from sparseae.errors import ConfigError

INIT_ROWS = 65536


def build_model(args: argparse.Namespace, data: Any, train_cfg: Any) -> Any:
    torch.manual_seed(args.seed)
    if getattr(args, "bf16_screen", False) and args.model != "sae":
        raise ConfigError("--bf16-screen applies to --model sae (with --sparsity topk) only")
    if args.model == "autoencoder":
        return _autoencoder(args, data, train_cfg)
    _refuse_autoencoder_flags(args)
    if not args.n_latents:
        raise ConfigError(f"--model {args.model} needs --n-latents (the dictionary size)")
    if args.model in ("sae", "matryoshka-sae"):
        return _dictionary(args, data)
    if args.model == "transcoder":
        return _transcoder(args, data)
    if args.model == "gated-sae":
        from sparseae.models import GatedConfig, GatedSAE

        if args.sparsity is not None:
            raise ConfigError("--model gated-sae has its own gate: drop --sparsity (keep --weight)")
        weight = 1e-3 if args.weight is None else args.weight
        return GatedSAE(GatedConfig(data.d_in, args.n_latents, weight=weight))
    from sparseae.models.sparse_coding import NeuralSparseCoding, SparseCodingConfig

    if args.sparsity is not None:
        raise ConfigError("--model sparse-coding has its own hard threshold: drop --sparsity")
    return NeuralSparseCoding(
        SparseCodingConfig(data.d_in, args.n_latents, lr=args.coding_lr, target_l0=args.k or 10)
    )


def _dictionary(args: argparse.Namespace, data: Any) -> Any:
    from sparseae.models import MatryoshkaConfig, MatryoshkaSAE
    from sparseae.models.sae import SAE, SAEConfig

    matryoshka = args.model == "matryoshka-sae"
    if args.widths is not None and not matryoshka:
        raise ConfigError("--widths applies to --model matryoshka-sae only")
    screen = getattr(args, "bf16_screen", False)
    sparsity = args.sparsity or ("batchtopk" if matryoshka else "topk")
    params = options.sparsity_params_from_args(args, sparsity)
    if sparsity in ("topk", "batchtopk"):
        params.setdefault("k", 32)
    code_act = args.code_activation or ("sigmoid" if sparsity == "kl" else "relu")
    common = dict(d_in=data.d_in, n_latents=args.n_latents, sparsity=sparsity,
                  sparsity_params=params, code_activation=code_act)  # fmt: skip
    if matryoshka:
        return MatryoshkaSAE(MatryoshkaConfig(**common, widths=tuple(args.widths or ())))
    return SAE(SAEConfig(**common, bf16_screen=screen))


def _transcoder(args: argparse.Namespace, data: Any) -> Any:
    from sparseae.models import Transcoder, TranscoderConfig

    if not args.d_out or args.d_out >= data.d_in:
        raise ConfigError(
            f"--model transcoder needs --d-out below the row width {data.d_in}: each row is "
            "the layer's input followed by its output"
        )
    sparsity = args.sparsity or "topk"
    params = options.sparsity_params_from_args(args, sparsity)
    if sparsity in ("topk", "batchtopk"):
        params.setdefault("k", 32)
    return Transcoder(
        TranscoderConfig(d_in=data.d_in - args.d_out, d_out=args.d_out, n_latents=args.n_latents,
                         sparsity=sparsity, sparsity_params=params, skip=args.skip)
    )  # fmt: skip


def _autoencoder(args: argparse.Namespace, data: Any, train_cfg: Any) -> Any:
    from sparseae.models.autoencoder import Autoencoder

    if args.normalize:
        raise ConfigError("--normalize applies to --model sae (use --scale for autoencoders)")
    cfg = options.model_config_from_args(
        args, data.d_in, input_shape=data.image_shape, data_scale=data.scale
    )
    if not args.layerwise:
        return Autoencoder(cfg)
    from sparseae.training.greedy import train_layerwise

    return train_layerwise(
        cfg,
        data.train.x,
        data.val.x if len(data.val) else None,
        train_config=train_cfg.replace(epochs=args.layerwise_epochs or train_cfg.epochs),
        log=lambda r: print(
            f"layer  {r['layer']} ({r['sizes'][0]}->{r['sizes'][1]}) pre-trained: loss "
            f"{r['loss']:.4f}" + (f", val {r['val_recon']:.4f}" if "val_recon" in r else ""),
            flush=True,
        ),
    )


def _refuse_autoencoder_flags(args: argparse.Namespace) -> None:
    given = [
        flag
        for flag, used in (
            ("--hidden", args.hidden is not None),
            ("--backbone", args.backbone != "mlp"),
            ("--tied", args.tied),
            ("--loss bce", args.loss != "mse"),
            ("--corruption", args.corruption != "none"),
            ("--layerwise", args.layerwise),
        )
        if used
    ]
    if given:
        raise ConfigError(f"{', '.join(given)} applies to --model autoencoder only")


def normalized_inputs(
    args: argparse.Namespace, model: Any, data: Any
) -> tuple[Any, Any, Callable[[Any], Any]]:
    """(train, val, to_model): the inputs in the model's space and the map that takes the
    loader's arrays there. The model keeps the whole scaling as its input transform."""
    if data.transform is not None:
        if model.row_width != model.d_in:
            raise ConfigError(
                "a transcoder's rows hold its input and its target: train on unscaled rows "
                "(--scale none)"
            )
        model.input_transform.set(*data.transform)
    x_train, x_val = data.train.x, data.val.x if len(data.val) else None
    if not args.normalize:
        return x_train, x_val, lambda x: x
    from sparseae.data.shards import ShardDataset, StreamSource
    from sparseae.training.distributed import rank_and_world

    if isinstance(x_train, ShardDataset):
        sample = torch.from_numpy(x_train.read(range(min(INIT_ROWS, len(x_train)))))
    else:
        sample = torch.as_tensor(x_train[:INIT_ROWS])
    s = float((sample.shape[1] / sample.pow(2).sum(1).mean()).sqrt())
    t = model.input_transform
    clip = (float(t.clip[0]) * s, float(t.clip[1]) * s) if t.clips else None
    t.set(t.shift.numpy(), t.scale.numpy() * s, clip)
    print(f"input  scaled by {s:.4g} so that E||x||^2 = d_in (kept in the model)")
    if isinstance(x_train, ShardDataset):
        rank, world = rank_and_world()
        x_train = StreamSource(
            x_train,
            batch_size=args.batch_size,
            seed=args.seed,
            rank=rank,
            world_size=world,
            device=_device(args),
            scale=s,
        )
    else:
        x_train = x_train * s
    return x_train, (x_val * s if x_val is not None else None), lambda x: x * s


def _device(args: argparse.Namespace) -> torch.device:
    from sparseae.devices import resolve_device

    return resolve_device(args.device)


def final_metrics(model: Any, data: Any, to_model: Callable[[Any], Any]) -> dict[str, Any]:
    """The held-out table row: test split, else val, else the first rows of a shard folder."""
    from sparseae.data.shards import ShardDataset
    from sparseae.training.evaluate import evaluate

    split, x = next(
        ((name, getattr(data, name).x) for name in ("test", "val") if len(getattr(data, name))),
        ("train", data.train.x),
    )
    if isinstance(x, ShardDataset):
        x = x.read(range(min(INIT_ROWS, len(x))))
    x = to_model(torch.as_tensor(x[:INIT_ROWS] if split == "train" else x))
    summary: dict[str, Any] = {"split": split, **evaluate(model, x)}
    if getattr(model, "checkpoint_kind", "") in ("sae", "matryoshka_sae", "gated_sae"):
        summary.update(_dictionary_metrics(model, x))
    return summary


@torch.no_grad()
def _dictionary_metrics(model: Any, x: torch.Tensor) -> dict[str, float]:
    from sparseae.devices import model_device
    from sparseae.metrics import SparsityStats, fraction_variance_explained

    dev = model_device(model)
    was = model.training
    model.eval()
    x = x.to(dev)
    code = model.code(x)
    x_hat = model.decode(code)
    model.train(was)
    stats = SparsityStats(model.n_latents, device=dev)
    stats.update(code)
    return {"fve": fraction_variance_explained(x_hat, x), "firing": stats.firing_frequency()}
