"""Document 003's KL sparse AE and stacked AE in Keras itself, timed on this machine.

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


def build(model: str) -> keras.Model:
    if model == "kl":
        code = keras.layers.Dense(
            300, activation="sigmoid", activity_regularizer=KLDivergenceRegularizer(0.05, 0.1)
        )
        width = 300
    else:
        code = keras.layers.Dense(30, activation="gelu")
        width = 30
    enc = keras.models.Sequential(
        [
            keras.layers.Input([28, 28]),
            keras.layers.Flatten(),
            keras.layers.Dense(100, activation="gelu"),
            code,
        ]
    )
    dec = keras.models.Sequential(
        [
            keras.layers.Input([width]),
            keras.layers.Dense(100, activation="gelu"),
            keras.layers.Dense(784, activation="sigmoid"),
            keras.layers.Reshape([28, 28]),
        ]
    )
    ae = keras.models.Sequential([enc, dec])
    ae.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam())
    return ae


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("kl", "stacked"), default="kl")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    default_data = os.environ.get("SPARSEAE_DATA", str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--data-dir", default=default_data)
    ap.add_argument("--out", default=str(HERE / "results" / "keras_fashion.jsonl"))
    args = ap.parse_args()
    keras.utils.set_random_seed(args.seed)
    x = idx(Path(args.data_dir) / "fashion-mnist" / "train-images-idx3-ubyte.gz") / 255.0
    x_val, x_train = x[:5000], x[5000:]
    ae = build(args.model)
    timer = EpochTimer()
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
        "epoch_seconds": [round(s, 3) for s in timer.seconds],
        "sec_per_epoch": sum(timer.seconds) / len(timer.seconds),
        "val_loss": [round(float(v), 5) for v in hist.history["val_loss"]],
    }
    print(json.dumps(row))
    with open(args.out, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
