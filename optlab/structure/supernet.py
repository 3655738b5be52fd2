"""Tabular architecture search: train every MLP of a space at once, then search the table.

A search over a small architecture space spends most of its time training the
same few hundred networks again and again (every searcher, every seed). The
NAS-Bench approach (Ying et al. 2019; Dong & Yang 2020) trains every
architecture of the space once and stores its learning curve; searchers then
query the table, so a comparison over many seeds costs lookups, not training.

:func:`tabulate_mlp_space` trains every configuration of an :func:`~optlab.structure.nas.mlp_space`
as ONE vmapped, jit-compiled program (or a few, chunked by a memory budget): a
masked MLP of maximal depth D and width W in which each run carries its
architecture as arrays,

  h_0 = x,   z_l = h_{l-1} K_l + b_l,   a_l = m_l ⊙ act_r(z_l),
  h_l = a_l if l ≤ depth_r else h_{l-1},   logits = h_D K_head + b_head,

where m_l is the run's 0/1 width mask of layer l, act_r its activation (one of
the space's, chosen per run by ``lax.switch``) and layers past its depth are the
identity. Each run starts from the standalone model's initial parameters
(:func:`~optlab.structure.nas.build_model` with the same seed) zero-padded to the
maximal shapes. Padded units have zero weights in and out and a masked output,
so their gradients are exactly zero and an elementwise optimizer (Adam, SGD, ...)
leaves them at zero: every run follows the trajectory of its standalone model,
with the data order of ``optlab.train.fit`` (epoch key ``fold_in(key(seed),
epoch)``, :func:`~optlab.train.steps.epoch_batch_indices`). Table entries match
:func:`~optlab.structure.nas.evaluate_architecture` up to float rounding (sums over
padded zeros run in another order), which the tests bound.

Scope: MLP spaces without normalization (``normalizations=(None,)``) and without
dropout (``dropouts=(0.0,)``). Dropout is left out because the standalone
model's masks are drawn with shapes ``(batch, width)``: the random bits of a
``(batch, W)`` draw are not those of a ``(batch, width)`` one, so a padded run
would see other masks. Activations must map 0 to 0 (relu, gelu, tanh, silu,
...); optimizers must act elementwise (a layer-wise trust ratio or a global
norm would see the same values, but a matrix preconditioner would not).

Example:
  >>> import numpy as np
  >>> from optlab.structure.nas import mlp_space
  >>> space = mlp_space(max_depth=1, widths=(4, 8), activations=("relu",),
  ...                   normalizations=(None,), dropouts=(0.0,))
  >>> rng = np.random.default_rng(0)
  >>> x, y = rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 3, 64)
  >>> table = tabulate_mlp_space(space, ((x, y), (x, y)), epochs=2, batch_size=32,
  ...                            learning_rate=1e-2, seed=0)
  >>> len(table), table.curves.shape
  (2, (2, 2))
  >>> score = table.objective()
  >>> bool(score({"depth": 1, "width_1": 8, "activation": "relu", "normalization": None,
  ...             "dropout": 0.0}) == table.scores[1])
  True

References:
  Ying et al., "NAS-Bench-101: Towards Reproducible Neural Architecture Search",
  ICML 2019 (https://arxiv.org/abs/1902.09635); Dong & Yang, "NAS-Bench-201:
  Extending the Scope of Reproducible Neural Architecture Search", ICLR 2020
  (https://arxiv.org/abs/2001.00326).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.optim.space import Choice, Conditional, SearchSpace

# Stacked runs are chunked so that one program's buffers stay under this many bytes.
MEMORY_BUDGET = 1 << 30
_ARCH_KEYS = ("depth", "activation", "normalization", "dropout")


# ----------------------------------------------------------------------------- the table


def _canonical(config: Mapping[str, Any]) -> tuple:
  """A hashable key of a configuration (numpy scalars as Python numbers)."""
  def plain(v):
    if isinstance(v, np.generic):
      return v.item()
    return v
  return tuple(sorted(((str(k), plain(v)) for k, v in config.items()), key=lambda kv: kv[0]))


@dataclasses.dataclass(frozen=True)
class ArchitectureTable:
  """Every architecture of a space, trained once: a lookup table for architecture search.

  Attributes:
    configs: the configurations, in the order of ``space.grid()``.
    curves: (configs, epochs) validation accuracy after each epoch (NaN after a
      divergence, where ``fit`` would have stopped).
    val_loss: (configs, epochs) validation loss after each epoch.
    train_loss: (configs, epochs) mean training loss of each epoch.
    num_params: (configs,) trainable parameters of the standalone model.
    status: per configuration, ``"completed"`` or ``"diverged"`` (as ``fit``).
    train_seconds: (configs,) each configuration's share of its program's run time.
    compile_seconds: (configs,) each configuration's share of its program's compile time.
    settings: epochs, batch_size, optimizer, learning_rate, seed, chunk_size,
      num_programs and the totals (seconds).
  """

  configs: tuple[dict[str, Any], ...]
  curves: np.ndarray
  val_loss: np.ndarray
  train_loss: np.ndarray
  num_params: np.ndarray
  status: tuple[str, ...]
  train_seconds: np.ndarray
  compile_seconds: np.ndarray
  settings: dict[str, Any]

  def __post_init__(self):
    index = {_canonical(c): i for i, c in enumerate(self.configs)}
    if len(index) != len(self.configs):
      raise ValueError("ArchitectureTable: configs must be distinct")
    object.__setattr__(self, "_index", index)

  def __len__(self) -> int:
    return len(self.configs)

  @property
  def scores(self) -> np.ndarray:
    """(configs,) best validation accuracy over the epochs (0.0 if none was evaluated)."""
    curves = np.where(np.isfinite(self.curves), self.curves, -np.inf)
    best = curves.max(axis=1) if curves.shape[1] else np.zeros(len(self))
    return np.where(np.isfinite(best), best, 0.0)

  @property
  def best_index(self) -> int:
    return int(np.argmax(self.scores))

  @property
  def best_config(self) -> dict[str, Any]:
    return dict(self.configs[self.best_index])

  @property
  def best_score(self) -> float:
    """The exhaustive optimum: the best score of any configuration in the table."""
    return float(self.scores[self.best_index])

  def index(self, config: Mapping[str, Any]) -> int:
    """Position of `config` in the table.

    Raises:
      KeyError: a configuration the table does not hold (another space, a
        normalization or dropout, a learning rate, an inactive width, ...).
    """
    if not isinstance(config, Mapping):
      raise TypeError(f"ArchitectureTable: config must be a mapping, got {type(config).__name__}")
    try:
      return self._index[_canonical(config)]
    except (KeyError, TypeError):
      example = self.configs[0] if self.configs else {}
      raise KeyError(f"ArchitectureTable: configuration {dict(config)} is not in the table of "
                     f"{len(self)} architectures (e.g. {example}); tabulate the space the "
                     "searcher draws from") from None

  def score(self, config: Mapping[str, Any]) -> float:
    """The best validation accuracy of `config` (:attr:`scores`)."""
    return float(self.scores[self.index(config)])

  def objective(self) -> Callable[[Mapping[str, Any]], float]:
    """``objective(config) -> best validation accuracy``, for ``search_architecture(evaluate=...)``.

    An unknown configuration raises a KeyError naming it.
    """
    scores = self.scores

    def objective(config: Mapping[str, Any]) -> float:
      return float(scores[self.index(config)])

    return objective

  def to_records(self) -> list[dict[str, Any]]:
    """One JSON-ready dict per configuration."""
    scores = self.scores
    return [{"config": dict(c), "score": float(scores[i]), "num_params": int(self.num_params[i]),
             "curve": [None if not math.isfinite(v) else float(v) for v in self.curves[i]],
             "status": self.status[i], "train_seconds": float(self.train_seconds[i]),
             "compile_seconds": float(self.compile_seconds[i])}
            for i, c in enumerate(self.configs)]


# ----------------------------------------------------------------------------- the space


@dataclasses.dataclass(frozen=True)
class _Layout:
  depth: int            # maximal depth D
  width: int            # maximal width W
  activations: tuple[str, ...]


def _layout(space: SearchSpace, configs: Sequence[Mapping[str, Any]]) -> _Layout:
  """Checks that `space` is a tabulable MLP space and returns its maximal shapes."""
  where = "tabulate_mlp_space"
  if not isinstance(space, SearchSpace):
    raise TypeError(f"{where}: space must be a SearchSpace (mlp_space(...)), got "
                    f"{type(space).__name__}")
  names = list(space)
  if "depth" not in names:
    raise ValueError(f"{where}: space must be an MLP space with a 'depth' dimension "
                     f"(optlab.structure.nas.mlp_space), got dimensions {names}")
  for name in names:
    dim = space[name]
    inner = dim.dimension if isinstance(dim, Conditional) else dim
    if not isinstance(inner, Choice):
      raise ValueError(f"{where}: every dimension must be a Choice, got {name!r} = {dim!r}")
    if name not in _ARCH_KEYS and not (name.startswith("width_") and name[6:].isdigit()):
      raise ValueError(f"{where}: unknown dimension {name!r}; an MLP space has depth, "
                       "width_1, width_2, ..., activation, normalization, dropout")
  if "normalization" in names and tuple(space.dimension("normalization").values) != (None,):
    raise ValueError(f"{where}: only normalization=None can be tabulated, got "
                     f"{space.dimension('normalization').values}; build the space with "
                     "mlp_space(..., normalizations=(None,))")
  if "dropout" in names and tuple(space.dimension("dropout").values) != (0.0,):
    raise ValueError(f"{where}: only dropout=0.0 can be tabulated exactly (the standalone "
                     "model's dropout masks depend on each layer's width), got "
                     f"{space.dimension('dropout').values}; build the space with "
                     "mlp_space(..., dropouts=(0.0,))")
  from optlab.models.activations import get_activation

  activations = tuple(space.dimension("activation").values) if "activation" in names else \
      ("relu",)
  fns = [get_activation(a) for a in activations]
  at_zero = np.asarray(jax.jit(lambda z: jnp.stack([f(z) for f in fns]))(np.float32(0.0)))
  for a, value in zip(activations, at_zero, strict=True):
    if value != 0.0:
      raise ValueError(f"{where}: activation {a!r} does not map 0 to 0, so padded units would "
                       "not stay inactive; accepted: activations with act(0) = 0 (relu, gelu, "
                       "tanh, silu, ...)")
  depths = [int(c["depth"]) for c in configs]
  if min(depths) < 1:
    raise ValueError(f"{where}: depth must be ≥ 1 (a linear model has no hidden layer), got "
                     f"{min(depths)}")
  widths = [int(c[f"width_{i}"]) for c in configs for i in range(1, int(c["depth"]) + 1)]
  return _Layout(max(depths), max(widths), activations)


# ----------------------------------------------------------------------------- parameters


def _initial_params(configs, layout: _Layout, in_features: int, num_classes: int, seed: int):
  """Each configuration's standalone initial parameters, zero-padded and stacked.

  ``nnx.Linear`` draws its kernel (lecun_normal: a normal truncated to ±2, scaled to
  variance 1/fan_in) with ``rngs.params()`` = ``fold_in(key(seed), count)`` and then
  its (zero) bias, so hidden layer l (0-based) uses count 2l and the head count
  2·depth, whatever the widths.
  """
  shapes = set()  # (count, fan_in, fan_out) of every kernel needed
  for config in configs:
    sizes = (in_features, *(int(config[f"width_{i}"]) for i in range(1, int(config["depth"]) + 1)),
             num_classes)
    shapes |= {(2 * l, a, b) for l, (a, b) in enumerate(itertools.pairwise(sizes))}
  counts = sorted({c for c, _, _ in shapes})
  size = max(a * b for _, a, b in shapes)
  # The threefry bits of element i of a draw do not depend on the draw's shape, so one flat
  # draw per count serves every shape (as a prefix): one small program instead of one
  # compilation per shape. The scaling is flax's lecun_normal, in float32.
  @jax.jit
  def draw(seed):
    keys = jnp.stack([jax.random.fold_in(jax.random.key(seed), c) for c in counts])
    return jax.vmap(lambda k: jax.random.truncated_normal(k, -2, 2, (size,), jnp.float32))(keys)

  flat = np.asarray(draw(seed))
  row = {c: i for i, c in enumerate(counts)}
  stddev = {a: np.sqrt(np.float32(1.0 / a)) / np.float32(.87962566103423978)
            for a in {a for _, a, _ in shapes}}

  def kernel(count, fan_in, fan_out):
    return flat[row[count], :fan_in * fan_out].reshape(fan_in, fan_out) * stddev[fan_in]

  n, depth, width = len(configs), layout.depth, layout.width
  kernels = [np.zeros((n, in_features if l == 0 else width, width), np.float32)
             for l in range(depth)]
  head = np.zeros((n, width, num_classes), np.float32)
  masks = np.zeros((n, depth, width), np.float32)
  active = np.zeros((n, depth), bool)
  act_index = np.zeros((n,), np.int32)
  num_params = np.zeros((n,), np.int64)
  for r, config in enumerate(configs):
    sizes = (in_features, *(int(config[f"width_{i}"]) for i in range(1, int(config["depth"]) + 1)))
    for l, (a, b) in enumerate(itertools.pairwise(sizes)):
      kernels[l][r, :a, :b] = kernel(2 * l, a, b)
      masks[r, l, :b] = 1.0
      active[r, l] = True
    head[r, :sizes[-1]] = kernel(2 * (len(sizes) - 1), sizes[-1], num_classes)
    act_index[r] = layout.activations.index(config.get("activation", "relu"))
    num_params[r] = sum(a * b + b for a, b in zip(sizes, (*sizes[1:], num_classes), strict=True))
  params = {"kernels": kernels, "biases": [np.zeros((n, width), np.float32)] * depth,
            "head_kernel": head, "head_bias": np.zeros((n, num_classes), np.float32)}
  arch = {"masks": masks, "active": active, "activation": act_index}
  return params, arch, num_params


def _check_against_model(config, params, r, in_shape, num_classes, seed) -> None:
  """Guards the init replication: one configuration's padded parameters vs build_model's."""
  from optlab.structure.nas import build_model

  model = build_model(config, in_shape, num_classes, seed=seed)
  expected = [np.asarray(layer.kernel[...]) for layer in model.layers]
  got = [params["kernels"][l][r, :k.shape[0], :k.shape[1]] for l, k in enumerate(expected)]
  head = np.asarray(model.head.kernel[...])
  got.append(params["head_kernel"][r, :head.shape[0]])
  expected.append(head)
  for g, e in zip(got, expected, strict=True):
    if not np.array_equal(g, e):
      raise RuntimeError("tabulate_mlp_space: the replicated initialization no longer matches "
                         "build_model's (has flax.nnx.Linear's initialization changed?)")


# ----------------------------------------------------------------------------- the program


def _forward(activations: tuple[Callable, ...]):
  def forward(params, arch, activation, x):
    h = x
    for l, (k, b) in enumerate(zip(params["kernels"], params["biases"], strict=True)):
      z = h @ k + b[None]  # as nnx.Linear: the bias broadcast over the batch
      a = jax.lax.switch(activation, activations, z) * arch["masks"][l][None]
      h = a if l == 0 else jnp.where(arch["active"][l], a, h)
    return h @ params["head_kernel"] + params["head_bias"][None]
  return forward


def _program(forward, tx, eval_batch_size: int):
  """train(params, arch, activation, orders, x, y, x_val, y_val) of one run -> per-epoch metrics.

  `activation` is an index shared by the runs of a program (not vmapped), so
  ``lax.switch`` stays a branch and only that activation is computed.
  """
  from optlab.train.steps import cross_entropy

  def train(params, arch, activation, orders, x, y, x_val, y_val):
    def loss_fn(params, xb, yb):
      return cross_entropy(forward(params, arch, activation, xb), yb)

    def evaluate(params):
      # As fit's make_predict: chunks of eval_batch_size, the last one zero-padded (a set
      # that fits one chunk is evaluated as is: padding rows do not change other rows).
      n = x_val.shape[0]
      if n <= eval_batch_size:
        logits = forward(params, arch, activation, x_val)
      else:
        chunks = -(-n // eval_batch_size)
        pad = chunks * eval_batch_size - n
        padded = jnp.concatenate([x_val, jnp.zeros((pad, *x_val.shape[1:]), x_val.dtype)])
        padded = padded.reshape(chunks, eval_batch_size, *x_val.shape[1:])
        logits = jax.lax.map(lambda xb: forward(params, arch, activation, xb), padded)
        logits = logits.reshape(chunks * eval_batch_size, -1)[:n]
      accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == y_val).astype(jnp.float32))
      return cross_entropy(logits, y_val), accuracy

    def step(carry, idx):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(carry, batches):
      carry, losses = jax.lax.scan(step, carry, batches)
      val_loss, val_accuracy = evaluate(carry[0])
      return carry, (jnp.mean(losses), val_loss, val_accuracy)

    _, out = jax.lax.scan(epoch, (params, tx.init(params)), orders)
    return out

  return train


def _chunk_size(layout: _Layout, in_features: int, num_classes: int, batch_size: int,
                n_val: int, n_eval: int, budget: int) -> int:
  """Runs per program so that parameters, optimizer state and activations fit `budget` bytes."""
  w, d = layout.width, layout.depth
  params = in_features * w + (d - 1) * w * w + d * w + w * num_classes + num_classes
  acts = 4 * d * w + num_classes  # pre-activations, activations, masks, gradients
  per_run = 4 * (8 * params + acts * max(batch_size, min(n_val, n_eval)) * 2)
  return max(1, budget // per_run)


def tabulate_mlp_space(
    space: SearchSpace,
    data: Any,
    *,
    epochs: int,
    batch_size: int = 64,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    seed: int = 0,
    chunk_size: int | None = None,
    eval_batch_size: int = 1024,
    memory_budget: int = MEMORY_BUDGET,
    check_init: bool = True,
    workers: int | None = None,
) -> ArchitectureTable:
  """Trains every configuration of an MLP space as one vmapped program and tabulates it.

  Every run trains as ``evaluate_architecture(config, data, epochs=..., ...)``
  would, padded into a masked MLP of the space's maximal depth and width (see the
  module docstring), all runs vmapped and scanned over epochs and minibatches in
  one compiled program per chunk of `chunk_size` runs (the last chunk is padded
  so that every chunk reuses one compilation).

  Args:
    space: an :func:`~optlab.structure.nas.mlp_space` with ``normalizations=(None,)``
      and ``dropouts=(0.0,)``, every dimension a Choice.
    data: ``DatasetSplits`` with a validation split, or a ``(train, validation)``
      pair of Datasets or ``(x, y)`` arrays (as ``evaluate_architecture``).
    epochs: training epochs (validation after each).
    batch_size: examples per step (the last incomplete batch of an epoch is dropped).
    optimizer: a name of ``optlab.optim`` acting elementwise (registry defaults
      apart from the learning rate).
    learning_rate: its learning rate.
    seed: the seed of every run: initialization (as ``build_model(config,
      seed=seed)``) and batch order (as ``fit(seed=seed)``).
    chunk_size: runs per program; by default as many as fit `memory_budget`.
    eval_batch_size: examples per evaluation chunk (as ``fit``).
    memory_budget: bytes one program's buffers may take when `chunk_size` is None.
    check_init: build one configuration with ``build_model`` and check that its
      initial parameters are the table's (a guard against a changed flax init).
    workers: chunks trained at the same time, each from its own thread (None: one
      per core on a CPU, 1 on accelerators; see ``optlab.tune.sweep``). Each
      run's ``train_seconds`` is its chunk's time over its size, measured while
      the other chunks ran.

  Divergence follows ``fit``'s rule (the first epoch whose mean training loss is
  not finite or exceeds 1e3 × the first epoch's ends the curve, status
  ``"diverged"``), except that ``fit`` skips a step with non-finite gradients and
  goes on, while here such a step makes its epoch's loss non-finite, so the run is
  marked diverged there.

  Returns:
    An :class:`ArchitectureTable`.

  Raises:
    ValueError: a space with normalization, dropout, non-Choice dimensions or an
      activation with act(0) ≠ 0; bad epochs, batch_size or chunk_size.
  """
  from optlab import optim
  from optlab.models.activations import get_activation
  from optlab.structure.nas import _pairs
  from optlab.train.steps import epoch_batch_indices
  from optlab.tune._chunks import _run_chunks, default_workers

  where = "tabulate_mlp_space"
  for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                           ("eval_batch_size", eval_batch_size, 1)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"{where}: {name} must be an integer ≥ {low}, got {value!r}")
  if chunk_size is not None and (isinstance(chunk_size, bool) or
                                 not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
    raise ValueError(f"{where}: chunk_size must be None (from memory_budget) or an integer ≥ 1, "
                     f"got {chunk_size!r}")
  if workers is not None and (isinstance(workers, bool) or
                              not isinstance(workers, (int, np.integer)) or workers < 1):
    raise ValueError(f"{where}: workers must be None (one per core) or an integer ≥ 1, "
                     f"got {workers!r}")
  if not isinstance(space, SearchSpace):
    raise TypeError(f"{where}: space must be a SearchSpace (mlp_space(...)), got "
                    f"{type(space).__name__}")
  configs = [dict(c) for c in space.grid()]
  layout = _layout(space, configs)
  (x, y), (x_val, y_val) = _pairs(data)
  in_shape = x.shape[1:]
  x = np.asarray(x, np.float32).reshape(len(x), -1)
  x_val = np.asarray(x_val, np.float32).reshape(len(x_val), -1)
  y, y_val = np.asarray(y, np.int32), np.asarray(y_val, np.int32)
  num_classes = int(max(y.max(), y_val.max())) + 1
  batch_size = min(int(batch_size), len(x))  # as evaluate_architecture
  params, arch, num_params = _initial_params(configs, layout, x.shape[1], num_classes, seed)
  if check_init:
    def spread(i):  # deepest, then most distinct widths (exercises the shape-prefix draw)
      depth = configs[i]["depth"]
      return depth, len({configs[i][f"width_{j}"] for j in range(1, depth + 1)}), num_params[i]

    deepest = max(range(len(configs)), key=spread)
    _check_against_model(configs[deepest], params, deepest, in_shape, num_classes, seed)
  tx = optim.get(optimizer, learning_rate=learning_rate)
  forward = _forward(tuple(get_activation(a) for a in layout.activations))
  train = jax.jit(jax.vmap(_program(forward, tx, eval_batch_size),
                           in_axes=(0, 0, None, None, None, None, None, None)))
  @jax.jit
  def batch_orders(seed):  # fit's: epoch key fold_in(key(seed), epoch), split, permutation
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed),
                                                           jnp.arange(epochs))
    return jax.vmap(lambda k: epoch_batch_indices(jax.random.split(k)[0], len(x),
                                                  batch_size))(keys)

  orders = batch_orders(seed)
  # Chunks: runs of one activation each (the program branches on it), all of one size so
  # that one compilation serves them all (a short chunk repeats its last run).
  n = len(configs)
  groups = [np.flatnonzero(arch["activation"] == a) for a in range(len(layout.activations))]
  groups = [g for g in groups if len(g)]
  size = chunk_size or _chunk_size(layout, x.shape[1], num_classes, batch_size, len(x_val),
                                   eval_batch_size, memory_budget)
  size = min(int(size), max(len(g) for g in groups))
  parts = [np.array_split(g, -(-len(g) // size)) for g in groups]
  size = max(len(p) for ps in parts for p in ps)  # balanced within each activation
  chunk_list = [p for ps in parts for p in ps]
  take = lambda tree, idx: jax.tree.map(lambda a: a[idx], tree)  # noqa: E731
  data_args = (orders, jnp.asarray(x), jnp.asarray(y), jnp.asarray(x_val), jnp.asarray(y_val))
  arch_arrays = {"masks": arch["masks"], "active": arch["active"]}
  outputs = [None] * n
  run_s = np.zeros(n)

  def chunk_args(chunk):
    idx = np.concatenate([chunk, np.full(size - len(chunk), chunk[-1])])
    return (take(params, idx), take(arch_arrays, idx),
            jnp.asarray(arch["activation"][chunk[0]], jnp.int32), *data_args)

  start = time.perf_counter()
  compiled = train.lower(*chunk_args(chunk_list[0])).compile()
  compile_s = time.perf_counter() - start

  def train_chunk(chunk, stop):
    if stop.is_set():  # another chunk failed
      return
    args = chunk_args(chunk)
    begin = time.perf_counter()
    out = [np.asarray(o) for o in jax.block_until_ready(compiled(*args))]
    run_s[chunk] = (time.perf_counter() - begin) / len(chunk)
    for j, r in enumerate(chunk):
      outputs[r] = [o[j] for o in out]

  # Chunks side by side, one per core on a CPU (as optlab.tune.sweep's; same numbers).
  begin_chunks = time.perf_counter()
  _run_chunks([functools.partial(train_chunk, chunk) for chunk in chunk_list],
              workers or default_workers())
  train_wall_s = time.perf_counter() - begin_chunks
  train_loss, val_loss, val_acc = (np.stack(o).astype(np.float64)
                                   for o in zip(*outputs, strict=True))
  # fit's divergence rule: stop (before evaluating) at the first epoch whose mean training loss
  # is not finite or exceeds 1e3 × the first epoch's. (fit would skip a non-finite step and
  # go on; here any non-finite batch loss makes the epoch's mean non-finite, so such a run
  # is marked diverged at that epoch.)
  curves = val_acc.copy()
  status = []
  for r in range(n):
    reference = max(train_loss[r, 0], 1e-12) if np.isfinite(train_loss[r, 0]) else np.inf
    bad = ~np.isfinite(train_loss[r]) | (train_loss[r] > 1e3 * reference)
    if bad.any():
      first = int(np.argmax(bad))
      curves[r, first:] = np.nan
      val_loss[r, first:] = np.nan
      status.append("diverged")
    else:
      status.append("completed")
  return ArchitectureTable(
      configs=tuple(configs), curves=curves, val_loss=val_loss, train_loss=train_loss,
      num_params=num_params, status=tuple(status), train_seconds=run_s,
      compile_seconds=np.full(n, compile_s / n),
      settings={"epochs": int(epochs), "batch_size": batch_size, "optimizer": optimizer,
                "learning_rate": float(learning_rate), "seed": int(seed), "chunk_size": size,
                "num_programs": len(chunk_list), "compiles": 1, "max_depth": layout.depth,
                "max_width": layout.width, "activations": list(layout.activations),
                "total_train_seconds": float(run_s.sum()),  # chunk times, summed
                "train_wall_seconds": float(train_wall_s),  # chunks side by side
                "total_compile_seconds": float(compile_s),
                "seconds": float(time.perf_counter() - start)})
