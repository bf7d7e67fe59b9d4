"""Document 003's autoencoders (KL, stacked, dropout, conv, recurrent) in Keras itself, here.

Needs TensorFlow, which is not a sparseae dependency: ``pip install tensorflow-cpu`` in a
separate environment, then ``python benchmarks/keras_fashion.py --model kl --seed 0``.
Appends one JSON line per run to ``benchmarks/results/keras_fashion.jsonl`` (seconds per
epoch as Keras' own log counts them, validation included; validation loss, which for the KL
model includes the penalty), which ``kl_fashion.py`` prints next to sparseae's figures.
The models are the document's code, with its KL regulariser's logs clipped (the
document's version takes the log of 0 and can produce NaN).
"""

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from tensorflow import keras

HERE = Path(__file__).resolve().parent
K = keras.ops


def idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


class KLDivergenceRegularizer(keras.regularizers.Regularizer):
    def __init__(self, weight, target=0.1):
        self.weight = weight
        self.target = target

    def __call__(self, inputs):
        m = K.mean(inputs, axis=0)
        t = K.full_like(m, self.target)

        def kl(p, q):
            return p * K.log(K.clip(p, 1e-7, 1) / K.clip(q, 1e-7, 1))

        return self.weight * (K.sum(kl(t, m)) + K.sum(kl(1.0 - t, 1.0 - m)))


def mlp_decoder(width: int) -> keras.Model:
    return keras.models.Sequential(
        [
            keras.layers.Input([width]),
            keras.layers.Dense(100, activation="gelu"),
            keras.layers.Dense(784, activation="sigmoid"),
            keras.layers.Reshape([28, 28]),
        ]
    )


def build(model: str) -> keras.Model:
    """The document's models, layer for layer."""
    L = keras.layers
    if model in ("kl", "stacked", "dropout"):
        front = [L.Input([28, 28]), L.Flatten()]
        if model == "dropout":
            front.append(L.Dropout(0.5))
        if model == "kl":
            code = L.Dense(
                300, activation="sigmoid", activity_regularizer=KLDivergenceRegularizer(0.05, 0.1)
            )
        else:
            code = L.Dense(30, activation="gelu")
        enc = keras.models.Sequential([*front, L.Dense(100, activation="gelu"), code])
        dec = mlp_decoder(300 if model == "kl" else 30)
    elif model == "conv":
        enc = keras.models.Sequential(
            [
                L.Input([28, 28]),
                L.Reshape([28, 28, 1]),
                L.Conv2D(16, kernel_size=3, padding="same", activation="gelu"),
                L.MaxPool2D(pool_size=2),
                L.Conv2D(32, kernel_size=3, padding="same", activation="gelu"),
                L.MaxPool2D(pool_size=2),
                L.Conv2D(64, kernel_size=3, padding="same", activation="gelu"),
                L.MaxPool2D(pool_size=2),
            ]
        )
        dec = keras.models.Sequential(
            [
                L.Input([3, 3, 64]),
                L.Conv2DTranspose(32, 3, strides=2, padding="valid", activation="gelu"),
                L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="gelu"),
                L.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),
                L.Reshape([28, 28]),
            ]
        )
    else:  # recurrent: image rows as a sequence
        enc = keras.models.Sequential(
            [L.Input([None, 28]), L.LSTM(100, return_sequences=True), L.LSTM(30)]
        )
        dec = keras.models.Sequential(
            [
                L.Input([30]),
                L.RepeatVector(28),
                L.LSTM(100, return_sequences=True),
                L.TimeDistributed(L.Dense(28, activation="sigmoid")),
            ]
        )
    ae = keras.models.Sequential([enc, dec])
    ae.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam())
    return ae


class EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch, validation included. With ``gate`` each epoch waits for a line on
    stdin before it starts (untimed) and reports on stdout when it ends, so another process
    can take turns with this one epoch by epoch (kl_fashion.py's paired timing)."""

    def __init__(self, gate=False):
        super().__init__()
        self.seconds = []
        self.gate = gate

    def on_epoch_begin(self, epoch, logs=None):
        if self.gate and not sys.stdin.readline():
            raise SystemExit("the pairing process went away")
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.t0)
        if self.gate:
            print(f"epoch_done {self.seconds[-1]:.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", choices=("kl", "stacked", "dropout", "conv", "recurrent"), default="kl"
    )
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    default_data = os.environ.get("SPARSEAE_DATA", str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=default_data)
    ap.add_argument("--out", default=str(HERE / "results" / "keras_fashion.jsonl"))
    ap.add_argument("--gate", action="store_true", help="take turns epoch by epoch (stdin)")
    args = ap.parse_args()
    keras.utils.set_random_seed(args.seed)
    x = idx(Path(args.data_dir) / "fashion-mnist" / "train-images-idx3-ubyte.gz") / 255.0
    x_val, x_train = x[:5000], x[5000:]
    ae = build(args.model)
    timer = EpochTimer(gate=args.gate)
    hist = ae.fit(
        x_train,
        x_train,
        validation_data=(x_val, x_val),
        batch_size=32,
        epochs=args.epochs,
        verbose=0,
        callbacks=[timer],
    )
    row = {
        "model": args.model,
        "seed": args.seed,
        "epochs": args.epochs,
        "keras": keras.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "paired": args.gate,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "epoch_seconds": [round(s, 3) for s in timer.seconds],
        "sec_per_epoch": sum(timer.seconds) / len(timer.seconds),
        "val_loss": [round(float(v), 5) for v in hist.history["val_loss"]],
    }
    print(json.dumps(row))
    with open(args.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
