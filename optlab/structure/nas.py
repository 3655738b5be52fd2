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
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from optlab.optim.space import SearchSpace
from optlab.structure.arch_space import (  # noqa: F401  (re-exported: the spaces NAS searches)
  NORMALIZATIONS,
  POOLINGS,
  TRAINING_KEYS,
  build_model,
  cnn_space,
  mlp_space,
)
from optlab.structure.controller import Controller

METHODS = ("random", "bayesian", "rl")


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
