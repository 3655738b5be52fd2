"""Neural architecture search: search spaces over models, one evaluation, three searchers.

An architecture is a configuration of a :class:`SearchSpace` (depth, widths,
activation, normalization, dropout for an MLP; conv blocks, channels, kernel
size, pooling and head for a CNN). :func:`build_model` turns it into an
``optlab.models`` network, :func:`evaluate_architecture` trains it with
``optlab.train.fit`` and scores it by its best validation accuracy, and
:func:`search_architecture` spends a budget of trials with one of three
searchers behind one interface:

* ``"random"``: independent draws, ``space.sample(np.random.default_rng(seed))``.
* ``"bayesian"``: Optuna's TPE (``optlab.tune.search.search(strategy="tpe")``).
* ``"rl"``: an LSTM controller trained with REINFORCE
  (:class:`optlab.structure.controller.Controller`, Zoph & Le 2017).

Scores are maximized. Every trial counts against the budget, including a
configuration seen before (its score is then taken from a cache, since training
the same configuration with the same seed gives the same score).

Example (a cheap synthetic score instead of training):
  >>> space = mlp_space(max_depth=2)
  >>> score = lambda config: float(config["activation"] == "gelu") + config["width_1"] / 256
  >>> result = search_architecture(score, space, method="random", budget=8, seed=0)
  >>> len(result.history), bool(result.best_score == result.best_so_far()[-1])
  (8, True)

A study on digits takes a few lines::

  task = load_task("digits", seed=0)
  objective = ArchitectureObjective(task, epochs=10)
  result = search_architecture(objective, mlp_space(), method="rl", budget=50, seed=0)
  result.best_so_far()   # best validation accuracy against the number of trials

References:
  Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017
  (https://arxiv.org/abs/1611.01578); Bergstra & Bengio, "Random Search for
  Hyper-Parameter Optimization", JMLR 2012; Bergstra et al., "Algorithms for
  Hyper-Parameter Optimization", NeurIPS 2011 (TPE).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from flax import nnx

from optlab.optim.space import Choice, Conditional, SearchSpace
from optlab.structure.controller import Controller

METHODS = ("random", "bayesian", "rl")
NORMALIZATIONS = (None, "layer", "batch")
POOLINGS = ("max", "avg", None)
# Keys a configuration may carry besides the architecture; evaluate_architecture uses them.
TRAINING_KEYS = ("learning_rate",)
_MLP_KEYS = ("depth", "activation", "normalization", "dropout")
_CNN_KEYS = ("blocks", "kernel_size", "pooling", "head_width", "activation", "normalization",
             "dropout")


# ----------------------------------------------------------------------------- spaces


def _positive_ints(where: str, name: str, values: Any) -> tuple[int, ...]:
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
    raise ValueError(f"{where}: {name} must be a non-empty sequence of integers, got {values!r}")
  for v in values:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise ValueError(f"{where}: {name} must hold integers ≥ 1, got {v!r} in {values!r}")
  return tuple(int(v) for v in values)


def _check_common(where: str, activations, normalizations, dropouts) -> None:
  from optlab.models.activations import get_activation

  if isinstance(activations, str) or not activations:
    raise ValueError(f"{where}: activations must be a non-empty sequence of names, got "
                     f"{activations!r}")
  for a in activations:
    get_activation(a)  # raises with the accepted names
  bad = [n for n in normalizations if n not in NORMALIZATIONS]
  if isinstance(normalizations, str) or not normalizations or bad:
    raise ValueError(f"{where}: normalizations must be a non-empty sequence drawn from "
                     f"{NORMALIZATIONS}, got {normalizations!r}")
  bad = [d for d in dropouts if isinstance(d, bool) or not isinstance(d, (int, float))
         or not 0 <= d < 1]
  if isinstance(dropouts, str) or not dropouts or bad:
    raise ValueError(f"{where}: dropouts must be a non-empty sequence of rates in [0, 1), got "
                     f"{dropouts!r}")


def _count_choice(where: str, name: str, low: int, high: int) -> tuple[int, ...]:
  for label, v in ((f"min_{name}", low), (f"max_{name}", high)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise ValueError(f"{where}: {label} must be an integer ≥ 1, got {v!r}")
  if low > high:
    raise ValueError(f"{where}: min_{name}={low} exceeds max_{name}={high}")
  return tuple(range(int(low), int(high) + 1))


def _per_layer(prefix: str, parent: str, counts: tuple[int, ...], options: tuple[int, ...]):
  """`{prefix}_i` for i = 1..max(counts), conditional on `parent` ≥ i where needed."""
  dims = {}
  for i in range(1, max(counts) + 1):
    active = tuple(c for c in counts if c >= i)
    dims[f"{prefix}_{i}"] = (Choice(options) if active == counts
                             else Conditional(Choice(options), parent=parent, values=active))
  return dims


def mlp_space(
    max_depth: int = 4,
    widths: Sequence[int] = (16, 32, 64, 128, 256),
    activations: Sequence[str] = ("relu", "gelu", "tanh", "silu"),
    normalizations: Sequence[str | None] = (None, "layer", "batch"),
    dropouts: Sequence[float] = (0.0, 0.1, 0.3),
    *,
    min_depth: int = 1,
) -> SearchSpace:
  """A search space over multilayer perceptrons (``optlab.models.MLP``).

  Dimensions: ``depth`` (a Choice of min_depth..max_depth hidden layers),
  ``width_i`` for i = 1..max_depth (a Choice of `widths`, active when
  depth ≥ i), ``activation``, ``normalization`` (before each activation) and
  ``dropout`` (after each hidden activation), each a Choice shared by all layers.

  Example:
    >>> space = mlp_space(max_depth=2, widths=(32, 64))
    >>> list(space)
    ['depth', 'width_1', 'width_2', 'activation', 'normalization', 'dropout']
    >>> len(space.grid())
    216
  """
  where = "mlp_space"
  depths = _count_choice(where, "depth", min_depth, max_depth)
  widths = _positive_ints(where, "widths", widths)
  _check_common(where, activations, normalizations, dropouts)
  return SearchSpace({
      "depth": Choice(depths),
      **_per_layer("width", "depth", depths, widths),
      "activation": Choice(tuple(activations)),
      "normalization": Choice(tuple(normalizations)),
      "dropout": Choice(tuple(float(d) for d in dropouts)),
  })


def cnn_space(
    max_blocks: int = 3,
    channels: Sequence[int] = (8, 16, 32, 64),
    kernel_sizes: Sequence[int] = (3, 5),
    poolings: Sequence[str | None] = ("max", "avg"),
    head_widths: Sequence[int] = (0, 32, 64, 128),
    activations: Sequence[str] = ("relu", "gelu", "tanh", "silu"),
    normalizations: Sequence[str | None] = (None, "layer", "batch"),
    dropouts: Sequence[float] = (0.0, 0.1, 0.3),
    *,
    min_blocks: int = 1,
) -> SearchSpace:
  """A search space over small convolutional networks (``optlab.models.CNN``).

  Dimensions: ``blocks`` (conv blocks, each Conv → norm → activation → 2x2
  pool), ``channels_i`` (a Choice of `channels`, active when blocks ≥ i),
  ``kernel_size`` (one for every convolution, as ``CNN`` takes one),
  ``pooling``, ``head_width`` (the hidden width of the head after global
  average pooling; 0 for a linear head), ``activation``, ``normalization`` (in
  the conv blocks) and ``dropout`` (in the head, so active only when
  head_width > 0). With pooling, `max_blocks` blocks need images of at least
  2^max_blocks pixels a side (3 blocks fit digits' 8x8).

  Example:
    >>> space = cnn_space(max_blocks=2)
    >>> list(space)[:4]
    ['blocks', 'channels_1', 'channels_2', 'kernel_size']
  """
  where = "cnn_space"
  counts = _count_choice(where, "blocks", min_blocks, max_blocks)
  channels = _positive_ints(where, "channels", channels)
  kernel_sizes = _positive_ints(where, "kernel_sizes", kernel_sizes)
  bad = [p for p in poolings if p not in POOLINGS]
  if isinstance(poolings, str) or not poolings or bad:
    raise ValueError(f"{where}: poolings must be a non-empty sequence drawn from {POOLINGS}, "
                     f"got {poolings!r}")
  if isinstance(head_widths, (str, bytes)) or not isinstance(head_widths, Sequence) or not \
      head_widths or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0
                         for w in head_widths):
    raise ValueError(f"{where}: head_widths must be a non-empty sequence of integers ≥ 0 "
                     f"(0: linear head), got {head_widths!r}")
  _check_common(where, activations, normalizations, dropouts)
  head_widths = tuple(int(w) for w in head_widths)
  dims: dict[str, Any] = {
      "blocks": Choice(counts),
      **_per_layer("channels", "blocks", counts, channels),
      "kernel_size": Choice(kernel_sizes),
      "pooling": Choice(tuple(poolings)),
      "head_width": Choice(head_widths),
      "activation": Choice(tuple(activations)),
      "normalization": Choice(tuple(normalizations)),
  }
  hidden = tuple(w for w in head_widths if w > 0)
  if hidden:
    dropout = Choice(tuple(float(d) for d in dropouts))
    dims["dropout"] = dropout if hidden == head_widths else Conditional(
        dropout, parent="head_width", values=hidden)
  return SearchSpace(dims)


# ----------------------------------------------------------------------------- models


def _layers(config: Mapping[str, Any], count_key: str, prefix: str) -> tuple[int, ...]:
  count = config[count_key]
  if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
    raise ValueError(f"build_model: {count_key} must be an integer ≥ 0, got {count!r}")
  missing = [f"{prefix}_{i}" for i in range(1, count + 1) if f"{prefix}_{i}" not in config]
  if missing:
    raise ValueError(f"build_model: {count_key}={count} needs {missing} in the configuration")
  extra = sorted(k for k in config if k.startswith(f"{prefix}_")
                 and k[len(prefix) + 1:].isdigit() and int(k[len(prefix) + 1:]) > count)
  if extra:
    raise ValueError(f"build_model: {count_key}={count}, but the configuration also sets {extra}")
  return tuple(int(config[f"{prefix}_{i}"]) for i in range(1, count + 1))


def _check_keys(config: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
  unknown = sorted(k for k in config if k not in known and k not in TRAINING_KEYS
                   and not (k.startswith(f"{prefix}_") and k[len(prefix) + 1:].isdigit()))
  if unknown:
    raise ValueError(f"build_model: unknown keys {unknown}; accepted: {list(known)}, "
                     f"{prefix}_1, {prefix}_2, ... and {list(TRAINING_KEYS)}")


def build_model(
    config: Mapping[str, Any],
    input_shape: int | Sequence[int],
    num_classes: int,
    *,
    seed: int = 0,
) -> nnx.Module:
  """The network a configuration of :func:`mlp_space` or :func:`cnn_space` describes.

  A configuration with ``depth`` builds an ``optlab.models.MLP`` (images are
  flattened); one with ``blocks`` builds an ``optlab.models.CNN`` over NHWC
  images with global average pooling before the head.

  Args:
    config: the architecture (keys of :data:`TRAINING_KEYS` are ignored here).
    input_shape: shape of one input: ``(features,)`` or an int for an MLP, images
      ``(height, width, channels)`` (or ``(height, width)``) for either.
    num_classes: outputs of the last layer.
    seed: seeds the initialization and the dropout stream.

  Returns:
    An ``nnx.Module`` in training mode.

  Example:
    >>> import jax.numpy as jnp
    >>> model = build_model({"depth": 1, "width_1": 32, "activation": "relu",
    ...                      "normalization": None, "dropout": 0.0}, (8, 8, 1), 10)
    >>> model(jnp.ones((2, 8, 8, 1))).shape
    (2, 10)
  """
  from optlab.models import CNN, MLP

  if not isinstance(config, Mapping):
    raise TypeError(f"build_model: config must be a mapping, got {type(config).__name__}")
  shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
  if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                      for d in shape):
    raise ValueError(f"build_model: input_shape must be positive integers, got {input_shape!r}")
  rngs = nnx.Rngs(seed)
  if "depth" in config:
    _check_keys(config, _MLP_KEYS, "width")
    hidden = _layers(config, "depth", "width")
    return MLP(int(np.prod(shape)), hidden, num_classes,
               activation=config.get("activation", "relu"),
               dropout=float(config.get("dropout", 0.0)),
               normalization=config.get("normalization"), rngs=rngs)
  if "blocks" in config:
    _check_keys(config, _CNN_KEYS, "channels")
    channels = _layers(config, "blocks", "channels")
    if not channels:
      raise ValueError("build_model: a CNN needs blocks ≥ 1, got blocks=0")
    if len(shape) not in (2, 3):
      raise ValueError(f"build_model: a CNN needs images, input_shape (height, width[, "
                       f"channels]), got {input_shape!r}")
    pooling = config.get("pooling", "max")
    if pooling is not None and min(shape[:2]) < 2 ** len(channels):
      raise ValueError(f"build_model: {len(channels)} blocks with 2x2 pooling need images of at "
                       f"least {2 ** len(channels)} pixels a side, got {shape[:2]}")
    head = int(config.get("head_width", 0))
    return CNN(shape[2] if len(shape) == 3 else 1, num_classes, channels=channels,
               kernel_size=int(config.get("kernel_size", 3)), pooling=pooling,
               activation=config.get("activation", "relu"),
               dropout=float(config.get("dropout", 0.0)),
               normalization=config.get("normalization"), hidden=(head,) if head else (),
               rngs=rngs)
  raise ValueError(f"build_model: the configuration has neither 'depth' (an MLP) nor 'blocks' "
                   f"(a CNN); got keys {sorted(config)}")


# ----------------------------------------------------------------------------- evaluation


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """One trained architecture.

  Attributes:
    score: best validation accuracy over the epochs (0.0 if training diverged
      before the first evaluation).
    num_params: trainable parameters.
    seconds: wall time of building and training, compilation included.
    compile_seconds: the part spent compiling.
    status: ``fit``'s status (``"completed"``, ``"diverged"``, ...).
    curve: validation accuracy after each epoch.
  """

  score: float
  num_params: int
  seconds: float
  compile_seconds: float
  status: str
  curve: tuple[float, ...]


def _pairs(data: Any) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  if hasattr(data, "train") and hasattr(data, "validation"):
    if data.validation is None:
      raise ValueError("evaluate_architecture: data has no validation split; make one with "
                       "optlab.data.train_val_test_split(..., val_fraction=0.2) or load_task")
    train, validation = data.train, data.validation
  elif isinstance(data, (tuple, list)) and len(data) == 2:
    train, validation = data
  else:
    raise TypeError("evaluate_architecture: data must be DatasetSplits with a validation split "
                    f"or a (train, validation) pair, got {type(data).__name__}")

  def xy(part, name):
    if hasattr(part, "x") and hasattr(part, "y"):
      return np.asarray(part.x), np.asarray(part.y)
    if isinstance(part, (tuple, list)) and len(part) == 2:
      return np.asarray(part[0]), np.asarray(part[1])
    raise TypeError(f"evaluate_architecture: the {name} data must be a Dataset or an (x, y) "
                    f"pair, got {type(part).__name__}")

  return xy(train, "train"), xy(validation, "validation")


def evaluate_architecture(
    config: Mapping[str, Any],
    data: Any,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> Evaluation:
  """Trains the architecture `config` on the training split and scores it on validation.

  The score is the best validation accuracy over the epochs (evaluated after
  each), as if training had been stopped early at its best epoch.

  Args:
    config: an architecture (:func:`build_model`); a ``learning_rate`` key
      overrides the argument.
    data: ``DatasetSplits`` with a validation split (:func:`load_task`), or a
      ``(train, validation)`` pair of Datasets or ``(x, y)`` arrays.
    epochs: training epochs.
    batch_size: examples per step.
    optimizer: a name of ``optlab.optim`` (its registry defaults apart from the
      learning rate).
    learning_rate: the optimizer's learning rate.
    seed: seeds the initialization, dropout and the batch order.

  Returns:
    An :class:`Evaluation`.
  """
  from optlab import models, optim
  from optlab.train import fit

  (x, y), (x_val, y_val) = _pairs(data)
  num_classes = int(max(y.max(), y_val.max())) + 1
  start = time.perf_counter()
  model = build_model(config, x.shape[1:], num_classes, seed=seed)
  lr = config.get("learning_rate", learning_rate)
  tx = optim.get(optimizer, learning_rate=lr)
  result = fit(model, tx, (x, y), validation=(x_val, y_val), epochs=epochs,
               batch_size=min(batch_size, len(x)), seed=seed, progress=False)
  curve = tuple(float(h["val_accuracy"]) for h in result.history if "val_accuracy" in h)
  score = max(curve) if curve else 0.0
  return Evaluation(score=score, num_params=models.count_params(model),
                    seconds=time.perf_counter() - start, compile_seconds=result.compile_seconds,
                    status=result.status, curve=curve)


class ArchitectureObjective:
  """A score function for :func:`search_architecture`: ``objective(config) -> float``.

  Trains each configuration with :func:`evaluate_architecture` (fixed data,
  epochs, optimizer and seed) and keeps every :class:`Evaluation` in
  ``evaluations`` (in call order), so studies can also report parameter counts
  and costs.

  Args:
    data: as for :func:`evaluate_architecture`.
    **options: epochs, batch_size, optimizer, learning_rate, seed.
  """

  def __init__(self, data: Any, **options: Any):
    unknown = sorted(set(options) - {"epochs", "batch_size", "optimizer", "learning_rate",
                                     "seed"})
    if unknown:
      raise TypeError(f"ArchitectureObjective: unknown options {unknown}; accepted: epochs, "
                      "batch_size, optimizer, learning_rate, seed")
    _pairs(data)  # fail early on bad data
    self.data = data
    self.options = options
    self.evaluations: list[tuple[dict[str, Any], Evaluation]] = []

  def __call__(self, config: Mapping[str, Any]) -> float:
    evaluation = evaluate_architecture(config, self.data, **self.options)
    self.evaluations.append((dict(config), evaluation))
    return evaluation.score


def load_task(
    name: str = "digits",
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    max_train: int | None = None,
    seed: int = 0,
) -> Any:
  """A dataset split into train / validation / test and standardized per channel.

  Images stay NHWC (MLPs flatten them). Statistics come from the training split.
  Sets that ship with a test split (Fashion-MNIST) keep it, and the validation
  set is carved out of their training set.

  Args:
    name: a dataset of ``optlab.data.load`` ("digits", "fashion_mnist", ...).
    val_fraction: fraction of the (training) data held out for validation.
    test_fraction: fraction held out for test when the set has no test split.
    max_train: keep at most this many training examples (a random subset).
    seed: seeds the splits and the subset.

  Returns:
    ``optlab.data.DatasetSplits(train, test, validation)``.
  """
  from optlab import data as data_lib

  loaded = data_lib.load(name)
  if isinstance(loaded, data_lib.DatasetSplits):
    parts = data_lib.train_val_test_split(loaded.train, val_fraction=0.0,
                                          test_fraction=val_fraction, seed=seed)
    train, validation, test = parts.train, parts.test, loaded.test
  else:
    parts = data_lib.train_val_test_split(loaded, val_fraction=val_fraction,
                                          test_fraction=test_fraction, seed=seed)
    train, validation, test = parts.train, parts.validation, parts.test
  if max_train is not None and max_train < len(train):
    keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:max_train])
    train = train.subset(keep)
  axis = tuple(range(train.x.ndim - 1)) if train.x.ndim > 2 else 0
  scaler = data_lib.Standardizer.fit(train.x, axis=axis)

  def scaled(ds):
    return dataclasses.replace(ds, x=np.asarray(scaler.apply(ds.x), np.float32))

  return data_lib.DatasetSplits(train=scaled(train), test=scaled(test),
                                validation=scaled(validation))


# ----------------------------------------------------------------------------- search


@dataclasses.dataclass
class NASResult:
  """The trials of one architecture search, in order.

  Attributes:
    method: the searcher (one of :data:`METHODS`).
    seed: its seed.
    history: ``(config, score)`` of each trial, in trial order.
    seconds: wall time of each trial (near 0 for a cached repeat).
    cached: whether each trial's score came from the cache.
    controller: the trained :class:`Controller` (``"rl"``), else None.
    study: the Optuna study (``"bayesian"``), else None.
  """

  method: str
  seed: int
  history: list[tuple[dict[str, Any], float]]
  seconds: list[float]
  cached: list[bool]
  controller: Controller | None = dataclasses.field(default=None, repr=False)
  study: Any = dataclasses.field(default=None, repr=False)

  def scores(self) -> np.ndarray:
    """Each trial's score, in trial order."""
    return np.asarray([s for _, s in self.history], np.float64)

  def best_so_far(self) -> np.ndarray:
    """The best score after 1, 2, ... trials (non-decreasing)."""
    return np.maximum.accumulate(self.scores())

  @property
  def best_index(self) -> int:
    """Index of the first trial reaching the best score."""
    return int(np.argmax(self.scores()))

  @property
  def best_config(self) -> dict[str, Any]:
    return dict(self.history[self.best_index][0])

  @property
  def best_score(self) -> float:
    return float(self.history[self.best_index][1])

  def records(self) -> list[dict[str, Any]]:
    """One JSON-ready dict per trial (for ``optlab.results.append_records``)."""
    best = self.best_so_far()
    return [{"method": self.method, "seed": self.seed, "trial": i, "config": dict(config),
             "score": score, "best_so_far": float(best[i]), "seconds": self.seconds[i],
             "cached": self.cached[i]} for i, (config, score) in enumerate(self.history)]


def _cache_key(config: Mapping[str, Any]) -> tuple | None:
  key = tuple(sorted(config.items(), key=lambda item: item[0]))
  try:
    hash(key)
  except TypeError:
    return None
  return key


def search_architecture(
    evaluate: Callable[[dict[str, Any]], float],
    space: SearchSpace,
    *,
    method: str = "random",
    budget: int,
    seed: int = 0,
    cache: bool = True,
    controller_options: Mapping[str, Any] | None = None,
) -> NASResult:
  """Spends `budget` trials of `evaluate` on configurations of `space` chosen by `method`.

  Args:
    evaluate: ``evaluate(config) -> score`` to maximize (an
      :class:`ArchitectureObjective`, or any function).
    space: the search space (:func:`mlp_space`, :func:`cnn_space` or your own).
    method: ``"random"`` (independent draws), ``"bayesian"`` (Optuna TPE via
      ``optlab.tune.search.search``) or ``"rl"`` (REINFORCE on an LSTM
      controller; the space must be discrete, see
      :func:`optlab.structure.controller.discretize`).
    budget: the number of trials, repeats of a configuration included.
    seed: seeds the searcher (not `evaluate`).
    cache: reuse the score of a configuration seen before in this search.
    controller_options: keyword arguments of :class:`Controller` (``"rl"`` only).

  Returns:
    A :class:`NASResult`.
  """
  if not callable(evaluate):
    raise TypeError(f"search_architecture: evaluate must be callable as evaluate(config) -> "
                    f"float, got {type(evaluate).__name__}")
  if not isinstance(space, SearchSpace):
    raise TypeError(f"search_architecture: space must be a SearchSpace, got "
                    f"{type(space).__name__}")
  if method not in METHODS:
    raise ValueError(f"search_architecture: unknown method {method!r}; accepted: "
                     f"{', '.join(map(repr, METHODS))}")
  if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
    raise ValueError(f"search_architecture: budget must be an integer ≥ 1 (trials), got "
                     f"{budget!r}")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"search_architecture: seed must be an integer ≥ 0, got {seed!r}")
  if controller_options is not None and method != "rl":
    raise ValueError(f"search_architecture: controller_options apply to method='rl' only, got "
                     f"method={method!r}")
  result = NASResult(method=method, seed=int(seed), history=[], seconds=[], cached=[])
  scores: dict[tuple, float] = {}

  def run(config: dict[str, Any]) -> float:
    start = time.perf_counter()
    key = _cache_key(config) if cache else None
    hit = key is not None and key in scores
    if hit:
      score = scores[key]
    else:
      raw = evaluate(dict(config))
      try:
        score = float(raw)
      except (TypeError, ValueError) as e:
        raise TypeError(f"search_architecture: evaluate must return a number, got {raw!r} for "
                        f"{config}") from e
      if not math.isfinite(score):
        raise ValueError(f"search_architecture: evaluate returned {score} for {config}; "
                         "return a finite score (e.g. 0.0 for a failed architecture)")
      if key is not None:
        scores[key] = score
    result.history.append((dict(config), score))
    result.seconds.append(time.perf_counter() - start)
    result.cached.append(hit)
    return score

  if method == "random":
    rng = np.random.default_rng(seed)
    for _ in range(budget):
      run(space.sample(rng))
  elif method == "rl":
    controller = Controller(space, seed=int(seed), **dict(controller_options or {}))
    result.controller = controller
    for _ in range(budget):
      config = controller.ask()
      controller.tell(config, run(config))
  else:
    from optlab.tune.search import search

    found = search(lambda config, trial: run(config), space, strategy="tpe",
                   n_trials=int(budget), seed=int(seed), direction="maximize")
    result.study = found.study
  return result
