"""optlab.train: the training engine.

Pure train and eval steps over the split state of a Flax NNX model, a fit loop
that compiles whole epochs as one ``lax.scan``, callbacks (early stopping,
reduce-on-plateau), orbax checkpoints with exact resume, and learning curves.

Example:
  >>> import numpy as np, optax
  >>> from flax import nnx
  >>> from optlab import train
  >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  >>> y = (x[:, 0] > 0).astype(np.int32)
  >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  >>> result = train.fit(model, optax.sgd(0.5), (x, y), validation=(x, y), epochs=5,
  ...                    batch_size=16, progress=False)
  >>> result.status
  'completed'
"""

from optlab.train import distributed, paths
from optlab.train.callbacks import Callback, EarlyStopping, ReduceLROnPlateau
from optlab.train.checkpoint import Checkpointer
from optlab.train.history import read_history
from optlab.train.loop import FitResult, fit
from optlab.train.paths import match_paths, parameter_paths
from optlab.train.plots import plot_learning_curves
from optlab.train.state import LearningRateScaleState, TrainState, learning_rate_scale, split_model
from optlab.train.steps import (
    LOSSES,
    binary_cross_entropy,
    cross_entropy,
    get_loss,
    make_evaluate,
    make_predict,
    make_scan_epoch,
    make_train_step,
    mean_squared_error,
)

__all__ = [
    "LOSSES",
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "FitResult",
    "LearningRateScaleState",
    "ReduceLROnPlateau",
    "TrainState",
    "binary_cross_entropy",
    "cross_entropy",
    "distributed",
    "fit",
    "get_loss",
    "learning_rate_scale",
    "make_evaluate",
    "make_predict",
    "make_scan_epoch",
    "make_train_step",
    "match_paths",
    "mean_squared_error",
    "parameter_paths",
    "paths",
    "plot_learning_curves",
    "read_history",
    "split_model",
]
