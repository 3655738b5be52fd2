"""Stratified k-fold cross-validation, model selection scored by it, and validation curves.

The folds come from ``optlab.data.stratified_kfold``. By default every fold
trains in one vmapped program through :func:`optlab.tune.sweep.sweep` (a fold
axis next to configurations and seeds); ``vectorize=False`` trains each fold
with ``optlab.train.fit`` instead, for callbacks such as early stopping or models
that cannot be vmapped. Both paths train fold ``f`` on the same examples (each
training set truncated to the shortest fold's size, at most a few examples
fewer) with the same seed, so they give the same numbers.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optax
from flax import nnx

from optlab.data.base import as_xy
from optlab.optim.space import SearchSpace
from optlab.tune.sweep import SweepResult, _maximize, sweep

# Keyword arguments of fit that the vectorized path honours as well.
_SWEEP_KWARGS = ("eval_batch_size", "l2", "skip_nonfinite", "divergence_factor")


@dataclasses.dataclass
class CVResult:
  """What :func:`cross_validate` returns.

  Attributes:
    per_fold: ``{metric: (k,) array}`` of the final validation values (``loss`` and
      each requested metric), one per fold.
    folds: the ``(train_idx, val_idx)`` pairs used.
    status: one run status per fold (``"completed"``, ``"diverged"``, ``"early_stopped"``).
    vectorized: whether the folds trained as one vmapped program.
  """

  per_fold: dict[str, np.ndarray]
  folds: list[tuple[np.ndarray, np.ndarray]]
  status: list[str]
  vectorized: bool

  @property
  def k(self) -> int:
    return len(self.folds)

  def _values(self, metric: str) -> np.ndarray:
    metric = metric.removeprefix("val_")
    if metric not in self.per_fold:
      raise KeyError(f"{metric!r} was not computed; computed: {sorted(self.per_fold)}")
    return self.per_fold[metric]

  def mean(self, metric: str) -> float:
    """Mean of `metric` over the folds."""
    return float(np.mean(self._values(metric)))

  def std(self, metric: str) -> float:
    """Standard deviation of `metric` over the folds (ddof=0, as scikit-learn reports)."""
    return float(np.std(self._values(metric)))

  def summary(self, metric: str | None = None) -> str:
    """E.g. ``"accuracy 0.953 ± 0.012 (5 folds)"``; every metric (loss last) when None."""
    names = [metric] if metric else [m for m in self.per_fold if m != "loss"] + ["loss"]
    return "; ".join(f"{m.removeprefix('val_')} {self.mean(m):.3f} ± {self.std(m):.3f} "
                     f"({self.k} folds)" for m in names)


def make_folds(y: np.ndarray, k: int, seed: int = 0,
               stratify: bool | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
  """k ``(train_idx, val_idx)`` pairs: stratified for 1-D integer labels, else shuffled.

  Args:
    y: the targets.
    k: number of folds, ≥ 2; with stratification, at most the smallest class count.
    seed: seed of the fold assignment.
    stratify: keep class proportions in every fold (default: for 1-D integer labels).

  Returns:
    The folds, as ``optlab.data.stratified_kfold`` gives them.
  """
  from optlab.data import stratified_kfold

  y = np.asarray(y)
  if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
    raise ValueError(f"cross_validate: k must be an int ≥ 2, got k={k!r}")
  if k > len(y):
    raise ValueError(f"cross_validate: k={k} folds need at least k examples, got {len(y)}")
  classification = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
  if stratify is None:
    stratify = classification
  if not stratify:
    fold_of = np.empty(len(y), np.int64)
    fold_of[np.random.default_rng(seed).permutation(len(y))] = np.arange(len(y)) % k
    everything = np.arange(len(y))
    return [(everything[fold_of != f], everything[fold_of == f]) for f in range(k)]
  if not classification:
    raise ValueError(f"cross_validate: stratify=True needs 1-D integer class labels, got y of "
                     f"dtype {y.dtype} and shape {y.shape}; pass stratify=False")
  classes, counts = np.unique(y, return_counts=True)
  if k > counts.min():
    raise ValueError(
        f"cross_validate: k={k} is more than the {counts.min()} members of the smallest class "
        f"(label {classes[counts.argmin()].item()!r}); stratified k-fold needs every class to have "
        f"at least k members. Lower k to ≤ {counts.min()} or pass stratify=False")
  return stratified_kfold(y, k, seed=seed)


def _default_hyperparams(optimizer: Any) -> dict[str, Any]:
  """The learning rate the optimizer would use by default (the vectorized path needs an axis)."""
  if isinstance(optimizer, str):
    from optlab import optim

    defaults = optim.info(optimizer).defaults
  else:
    defaults = {k: p.default for k, p in inspect.signature(optimizer).parameters.items()
                if p.default is not inspect.Parameter.empty}
  if "learning_rate" in defaults and isinstance(defaults["learning_rate"], numbers.Real):
    return {"learning_rate": defaults["learning_rate"]}
  raise ValueError("cross_validate: give hyperparams (e.g. {'learning_rate': 0.01}); the "
                   "optimizer has no numeric default learning rate")


def _build_tx(optimizer: Any, hyperparams: Mapping[str, Any]) -> optax.GradientTransformation:
  if isinstance(optimizer, optax.GradientTransformation):
    if hyperparams:
      raise TypeError("cross_validate: hyperparams need an optimizer name or factory, not a "
                      "built optax.GradientTransformation")
    return optimizer
  if isinstance(optimizer, str):
    from optlab import optim

    return optim.get(optimizer, **hyperparams)
  return optimizer(**hyperparams)


def _use_vectorized(optimizer: Any, vectorize: bool | None, fit_kwargs: Mapping[str, Any]) -> bool:
  unsupported = sorted(k for k in fit_kwargs if k not in _SWEEP_KWARGS)
  built = isinstance(optimizer, optax.GradientTransformation)
  if vectorize is None:
    return not unsupported and not built
  if vectorize and (unsupported or built):
    why = (f"fit arguments {unsupported} need vectorize=False" if unsupported else
           "a built optax.GradientTransformation cannot be injected; pass its registry name "
           "or factory")
    raise ValueError(f"cross_validate: vectorize=True is not possible: {why}")
  return bool(vectorize)


def _fold_fit(model_fn, optimizer, x, y, folds, config, *, seed, loss, metrics, epochs,
              batch_size, fit_kwargs) -> tuple[dict[str, np.ndarray], list[str]]:
  """Trains each fold with ``optlab.train.fit``; (values {metric: (k,)}, statuses)."""
  from optlab.train import fit

  length = min(len(t) for t, _ in folds)
  values: dict[str, list[float]] = {}
  status = []
  for train_idx, val_idx in folds:
    train_idx = train_idx[:length]
    result = fit(model_fn(nnx.Rngs(seed)), _build_tx(optimizer, config),
                 (x[train_idx], y[train_idx]), validation=(x[val_idx], y[val_idx]),
                 loss=loss, metrics=metrics, epochs=epochs, batch_size=batch_size, seed=seed,
                 progress=False, **fit_kwargs)
    status.append(result.status)
    chosen = result.history[-1] if result.history else {}
    if result.best_epoch is not None:
      chosen = next((h for h in result.history if h["epoch"] == result.best_epoch), chosen)
    if result.status == "diverged":
      chosen = {}
    for name in ("loss", *metrics):
      values.setdefault(name, []).append(float(chosen.get(f"val_{name}", math.nan)))
  return {k: np.asarray(v) for k, v in values.items()}, status


def cross_validate(
    model_fn: Callable[[nnx.Rngs], nnx.Module],
    optimizer: str | Callable[..., optax.GradientTransformation] | optax.GradientTransformation,
    data: Any,
    *,
    k: int = 5,
    seed: int = 0,
    hyperparams: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = ("accuracy",),
    loss: Any = "cross_entropy",
    epochs: int = 10,
    batch_size: int = 64,
    stratify: bool | None = None,
    vectorize: bool | None = None,
    **fit_kwargs: Any,
) -> CVResult:
  """k-fold cross-validation of one configuration: per-fold and mean ± std metrics.

  Fold ``f`` trains ``model_fn(nnx.Rngs(seed))`` on the other folds (truncated to
  the shortest training set) with batch order from `seed`, and is scored on its
  held-out part at the end of training (at the restored best epoch with early
  stopping).

  Args:
    model_fn: builds a fresh model from an ``nnx.Rngs``.
    optimizer: a registry name, a factory of hyperparameters, or (``vectorize=False``
      only) a built ``optax.GradientTransformation``.
    data: ``(x, y)`` or a Dataset.
    k: number of folds (2 ≤ k ≤ the smallest class count when stratified).
    seed: seeds the folds, the model initialisation and the batch order.
    hyperparams: the optimizer's hyperparameters (default: its learning rate).
    metrics: metric names of ``optlab.metrics``.
    loss: as in ``fit``.
    epochs: epochs per fold.
    batch_size: examples per step.
    stratify: stratified folds (default: for 1-D integer labels).
    vectorize: train the folds as one vmapped program (default: when no argument
      needs ``fit``); False trains them one by one with ``fit``.
    **fit_kwargs: more arguments of ``optlab.train.fit`` (callbacks, augment, ...).

  Returns:
    A :class:`CVResult`.

  Example:
    >>> from optlab import data, models
    >>> iris = data.iris()
    >>> cv = cross_validate(lambda rngs: models.MLP(4, [8], 3, rngs=rngs), "adam", iris,
    ...                     k=3, epochs=2, batch_size=16)  # doctest: +SKIP
    >>> cv.summary("accuracy")  # doctest: +SKIP
    'accuracy 0.873 ± 0.025 (3 folds)'

  Reference: Kohavi, "A study of cross-validation and bootstrap for accuracy
  estimation and model selection", IJCAI 1995 (stratified 10-fold recommended).
  """
  x, y = as_xy(data, "data", caller="cross_validate")
  folds = make_folds(y, k, seed=seed, stratify=stratify)
  config = dict(hyperparams) if hyperparams else {}
  if not _use_vectorized(optimizer, vectorize, fit_kwargs):
    values, status = _fold_fit(model_fn, optimizer, x, y, folds, config, seed=seed, loss=loss,
                               metrics=metrics, epochs=epochs, batch_size=batch_size,
                               fit_kwargs=fit_kwargs)
    return CVResult(per_fold=values, folds=folds, status=status, vectorized=False)
  config = config or _default_hyperparams(optimizer)
  result = sweep(model_fn, optimizer, (x, y), hyperparams=[config], seeds=[seed], folds=folds,
                 loss=loss, metrics=metrics, epochs=epochs, batch_size=batch_size, **fit_kwargs)
  values = {name: result[f"val_{name}"][0, 0, :, -1] for name in ("loss", *metrics)}
  return CVResult(per_fold=values, folds=folds, status=[str(s) for s in result.status[0, 0]],
                  vectorized=True)


@dataclasses.dataclass
class SelectionResult:
  """What :func:`select` returns.

  Attributes:
    configs: the configurations scored, in grid order.
    metric: the validation metric that scores them.
    per_fold: ``(config, fold)`` final validation values of `metric`.
    maximize: whether larger scores are better.
    best_config: the configuration with the best mean score.
    best_score: its mean score.
    sweep: the underlying :class:`SweepResult` (vectorized path), else None.
  """

  configs: list[dict[str, Any]]
  metric: str
  per_fold: np.ndarray
  maximize: bool
  best_config: dict[str, Any]
  best_score: float
  sweep: SweepResult | None = None

  @property
  def mean(self) -> np.ndarray:
    return np.mean(self.per_fold, axis=1)

  @property
  def std(self) -> np.ndarray:
    return np.std(self.per_fold, axis=1)

  def rows(self) -> list[dict[str, Any]]:
    """One dict per configuration: its hyperparameters, mean, std and rank (1 = best)."""
    score = np.where(np.isnan(self.mean), -np.inf if self.maximize else np.inf, self.mean)
    order = np.argsort(-score if self.maximize else score, kind="stable")
    rank = np.empty(len(order), int)
    rank[order] = np.arange(1, len(order) + 1)
    return [{**c, f"{self.metric}_mean": float(m), f"{self.metric}_std": float(s), "rank": int(r)}
            for c, m, s, r in zip(self.configs, self.mean, self.std, rank, strict=True)]

  def table(self) -> str:
    """The rows as aligned text, best first."""
    rows = sorted(self.rows(), key=lambda r: r["rank"])
    names = list(self.configs[0]) if self.configs else []
    header = [*names, self.metric, "rank"]
    lines = [[*(f"{r.get(n, '')!s:.6}" if isinstance(r.get(n), float) else str(r.get(n, ""))
                for n in names),
              f"{r[f'{self.metric}_mean']:.4f} ± {r[f'{self.metric}_std']:.4f}", str(r["rank"])]
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*line) for line in lines)])


def _configs(space: SearchSpace | Mapping[str, Sequence[Any]], grid_points: Any) -> list[dict]:
  if isinstance(space, SearchSpace):
    return space.grid(grid_points)
  if not isinstance(space, Mapping) or not space:
    raise TypeError(f"select: space must be a SearchSpace or a non-empty mapping name -> values, "
                    f"got {space!r}")
  if all(hasattr(v, "grid") for v in space.values()):
    return SearchSpace(space).grid(grid_points)
  axes = {name: list(v) if isinstance(v, Sequence | np.ndarray) and not isinstance(v, str)
          else [v] for name, v in space.items()}
  empty = [n for n, v in axes.items() if not v]
  if empty:
    raise ValueError(f"select: space axes {empty} have no values")
  return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def select(
    model_fn: Callable[[nnx.Rngs], nnx.Module],
    optimizer: str | Callable[..., optax.GradientTransformation],
    data: Any,
    space: SearchSpace | Mapping[str, Sequence[Any]],
    *,
    k: int = 5,
    metric: str = "accuracy",
    grid_points: int | Mapping[str, int] = 5,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    loss: Any = "cross_entropy",
    epochs: int = 10,
    batch_size: int = 64,
    stratify: bool | None = None,
    vectorize: bool | None = None,
    **fit_kwargs: Any,
) -> SelectionResult:
  """Model selection: every grid configuration of `space` scored by k-fold cross-validation.

  The score of a configuration is the mean over folds of its final validation
  `metric`; the best is the largest (or, for losses, the smallest: ``optlab.metrics.
  greater_is_better``). Vectorized, configurations with the same keys × folds are one
  sweep; otherwise each configuration is cross-validated with ``fit``.

  Args:
    model_fn: builds a fresh model from an ``nnx.Rngs``.
    optimizer: a registry name or a factory of hyperparameters.
    data: ``(x, y)`` or a Dataset.
    space: a :class:`SearchSpace` (laid out with ``space.grid(grid_points)``), a
      mapping of dimensions, or a mapping ``{name: [values]}`` (its product).
    k: number of folds.
    metric: the validation metric that scores a configuration (``"loss"`` allowed).
    grid_points: points per continuous dimension (see ``SearchSpace.grid``).
    seed: seeds the folds, the models and the batch order.
    metrics: metrics computed (default: `metric`).
    loss, epochs, batch_size, stratify, vectorize, fit_kwargs: as in :func:`cross_validate`.

  Returns:
    A :class:`SelectionResult`.

  Example:
    >>> from optlab import data, models
    >>> result = select(lambda rngs: models.MLP(4, [8], 3, rngs=rngs), "sgd", data.iris(),
    ...                 {"learning_rate": [0.01, 0.1]}, k=3, epochs=2,
    ...                 batch_size=16)  # doctest: +SKIP
    >>> result.best_config  # doctest: +SKIP
    {'learning_rate': 0.1}

  Reference: Stone, "Cross-validatory choice and assessment of statistical
  predictions", JRSS B 1974.
  """
  x, y = as_xy(data, "data", caller="select")
  configs = _configs(space, grid_points)
  metric = metric.removeprefix("val_")
  metrics = tuple(metrics) if metrics is not None else ((metric,) if metric != "loss" else ())
  if metric != "loss" and metric not in metrics:
    metrics = (*metrics, metric)
  maximize = _maximize(metric, "auto")
  folds = make_folds(y, k, seed=seed, stratify=stratify)
  per_fold = np.full((len(configs), len(folds)), np.nan)
  result = None
  if _use_vectorized(optimizer, vectorize, fit_kwargs):
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, config in enumerate(configs):
      groups.setdefault(tuple(sorted(config)), []).append(i)
    for indices in groups.values():
      result = sweep(model_fn, optimizer, (x, y), hyperparams=[configs[i] for i in indices],
                     seeds=[seed], folds=folds, loss=loss, metrics=metrics, epochs=epochs,
                     batch_size=batch_size, **fit_kwargs)
      per_fold[indices] = result[f"val_{metric}"][:, 0, :, -1]
    result = result if len(groups) == 1 else None
  else:
    for i, config in enumerate(configs):
      values, _ = _fold_fit(model_fn, optimizer, x, y, folds, config, seed=seed, loss=loss,
                            metrics=metrics, epochs=epochs, batch_size=batch_size,
                            fit_kwargs=fit_kwargs)
      per_fold[i] = values[metric]
  mean = per_fold.mean(axis=1)
  if np.all(np.isnan(mean)):
    raise ValueError(f"select: every configuration has a non-finite {metric} (all diverged)")
  best = int(np.nanargmax(mean) if maximize else np.nanargmin(mean))
  return SelectionResult(configs=configs, metric=metric, per_fold=per_fold, maximize=maximize,
                         best_config=dict(configs[best]), best_score=float(mean[best]),
                         sweep=result)


def plot_validation_curve(
    selection: SelectionResult,
    param: str,
    *,
    metric: str | None = None,
    path: str | Path | None = None,
    log: bool | None = None,
    ax: Any = None,
) -> Any:
  """Validation score against one hyperparameter: mean ± std across folds, folds faint.

  With several hyperparameters, the curve is the slice through the best
  configuration (the others held at their best values).

  Args:
    selection: a :class:`SelectionResult`.
    param: the hyperparameter on the x axis.
    metric: a label for the y axis (default: the selection's metric).
    path: also write the figure here (PNG, PDF, SVG by suffix).
    log: log-scale x axis (default: when the values are positive and span ≥ 2 decades).
    ax: draw into this matplotlib ``Axes`` (a panel of a larger figure) instead of
      a new figure.

  Returns:
    The ``matplotlib.figure.Figure`` drawn into.
  """
  from matplotlib.figure import Figure

  if not selection.configs or param not in selection.configs[0]:
    known = sorted(selection.configs[0]) if selection.configs else []
    raise ValueError(f"plot_validation_curve: {param!r} is not a swept hyperparameter; "
                     f"swept: {known}")
  others = {k: v for k, v in selection.best_config.items() if k != param}
  rows = [i for i, c in enumerate(selection.configs)
          if all(c.get(k) == v for k, v in others.items()) and param in c]
  values = [selection.configs[i][param] for i in rows]
  if not all(isinstance(v, numbers.Real) for v in values):
    raise ValueError(f"plot_validation_curve: {param!r} takes non-numeric values {values!r}")
  order = np.argsort(values, kind="stable")
  xs = np.asarray(values, float)[order]
  folds = selection.per_fold[np.asarray(rows)[order]]
  mean, std = folds.mean(axis=1), folds.std(axis=1)
  if log is None:
    log = bool(xs.size and xs.min() > 0 and xs.max() / xs.min() >= 100)
  if ax is None:
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    own_figure = True
  else:
    fig, own_figure = ax.figure, False
  for f in range(folds.shape[1]):
    ax.plot(xs, folds[:, f], color="tab:blue", alpha=0.25, lw=0.8,
            label="folds" if f == 0 else None)
  ax.plot(xs, mean, "o-", color="tab:blue", label=f"mean ({folds.shape[1]} folds)")
  ax.fill_between(xs, mean - std, mean + std, color="tab:blue", alpha=0.2, label="± std")
  if log:
    ax.set_xscale("log")
  ax.set_xlabel(param)
  ax.set_ylabel(f"validation {metric or selection.metric}")
  if others:
    ax.set_title(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in others.items()), fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  if own_figure:
    fig.tight_layout()
  if path is not None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
  return fig
