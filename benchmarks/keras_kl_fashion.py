"""Document 003's KL sparse autoencoder in Keras itself, to time it on this machine.

Needs TensorFlow (not a sparseae dependency): ``pip install tensorflow-cpu`` in a separate
environment, then ``python benchmarks/keras_kl_fashion.py [EPOCHS]``. Prints seconds per epoch
(validation included, as Keras' own log) and validation loss (BCE + KL penalty).
"""

import gzip
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from tensorflow import keras


def idx(p):
    with gzip.open(p) as f:
        b = f.read()
    return np.frombuffer(b, np.uint8, offset=16).reshape(-1, 28, 28)


DATA = os.environ.get(
    "SPARSEAE_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)
X = idx(os.path.join(DATA, "fashion-mnist", "train-images-idx3-ubyte.gz")) / 255.0
X_valid, X_train = X[:5000], X[5000:]
K = keras.ops


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


enc = keras.models.Sequential(
    [
        keras.layers.Input([28, 28]),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="gelu"),
        keras.layers.Dense(
            300, activation="sigmoid", activity_regularizer=KLDivergenceRegularizer(0.05, 0.1)
        ),
    ]
)
dec = keras.models.Sequential(
    [
        keras.layers.Input([300]),
        keras.layers.Dense(100, activation="gelu"),
        keras.layers.Dense(784, activation="sigmoid"),
        keras.layers.Reshape([28, 28]),
    ]
)
ae = keras.models.Sequential([enc, dec])
ae.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam())
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
t = []


class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, e, logs=None):
        t.append(time.perf_counter() - self.t0)


h = ae.fit(
    X_train,
    X_train,
    validation_data=(X_valid, X_valid),
    batch_size=32,
    epochs=epochs,
    verbose=0,
    callbacks=[T()],
)
print(
    "keras",
    keras.__version__,
    "epoch seconds (incl. validation)",
    [round(x, 2) for x in t],
    "val_loss",
    [round(v, 4) for v in h.history["val_loss"]],
)
