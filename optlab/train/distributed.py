"""Scale out with JAX itself: a device mesh, shardings, and multi-host start-up.

optlab adds no parallel layer of its own. ``fit(..., mesh=mesh)`` and
``sweep(..., mesh=mesh)`` place their arrays with ``jax.sharding.NamedSharding``
and let ``jax.jit`` (GSPMD) partition the same compiled step:

- **Data parallel** (``fit``): each batch is split along the mesh's data axis
  (``PartitionSpec("data")``); parameters, model state and optimizer state are
  replicated, so every device computes the gradient of its slice and XLA inserts
  the all-reduce. The result equals one device's up to the order of floating-point
  reductions.
- **Sharded state** (``fit``, a mesh with a ``"model"`` axis too): every array of
  the training state with at least :data:`MIN_SHARD_SIZE` elements is split along
  its largest dimension divisible by the model axis' size (Adam's ``mu``/``nu``
  follow their parameter, having its shape); smaller arrays stay replicated.
- **Sweeps** (``sweep``): the vectorized run axis is split along the data axis;
  runs never communicate.

"Up to reduction order" has one visible case: a parameter whose gradient is
zero in exact arithmetic (a bias just before batch normalization) receives
rounding noise instead, and Adam's normalization turns that noise into steps of
the size of the learning rate, so such a parameter differs between device counts
(the loss and the other parameters do not).

The data axis is the mesh axis named ``"data"`` (or the only axis of a 1-D mesh).
Build a 1-D mesh over every device of every process with :func:`data_mesh`.

Multi-host: start one Python process per host (or per accelerator group), call
:func:`initialize_from_env` (a thin wrapper of ``jax.distributed.initialize``)
before anything else touches JAX, then build the mesh from ``jax.devices()``,
which then lists the devices of *all* processes. Every process runs the same
program on the same full training arrays (same seed, same batch order); each
process feeds only its own devices' slices of each batch. Launch recipe, on one
machine with two CPU processes of two devices each (a real cluster uses the
first host's address)::

  # not executed here: one line per process
  JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \\
    JAX_NUM_CPU_DEVICES=2 python train.py &
  JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 \\
    JAX_NUM_CPU_DEVICES=2 python train.py

with ``train.py`` starting::

  from optlab.train import distributed
  distributed.initialize_from_env()        # before any other JAX call
  mesh = distributed.data_mesh()           # 4 devices over 2 processes
  result = fit(model, tx, (x, y), mesh=mesh, batch_size=64,
               history_path="h.jsonl" if distributed.is_main_process() else None)

On SLURM, Open MPI or a Cloud TPU pod, ``jax.distributed.initialize()`` with no
arguments detects the same values itself. CPU processes talk through gloo
(``jax_cpu_collectives_implementation``, the default in jax 0.10).

Reference: the JAX documentation, "Distributed arrays and automatic
parallelization" and "Multi-host and multi-process environments".
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
MODEL_AXIS = "model"
# Training-state arrays with at least this many elements are sharded along a
# mesh's model axis (when it has one); smaller ones are replicated.
MIN_SHARD_SIZE = 1 << 16

ENV_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh with axis ``"data"`` over `devices` (default: ``jax.devices()``, all processes).

  Example:
    >>> mesh = data_mesh()
    >>> mesh.axis_names
    ('data',)
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("data_mesh: devices is empty; give at least one jax.Device")
  return Mesh(np.asarray(devices, dtype=object), (DATA_AXIS,))


def check_mesh(mesh: Any, caller: str) -> Mesh:
  """`mesh` if it is a ``jax.sharding.Mesh`` with a data axis, else a TypeError/ValueError."""
  if not isinstance(mesh, Mesh):
    raise TypeError(f"{caller}: mesh must be a jax.sharding.Mesh (e.g. "
                    f"optlab.train.distributed.data_mesh()), got {type(mesh).__name__}")
  data_axis(mesh, caller)
  return mesh


def data_axis(mesh: Mesh, caller: str = "data_axis") -> str:
  """The name of `mesh`'s data axis: ``"data"``, or the only axis of a 1-D mesh."""
  names = tuple(mesh.axis_names)
  if DATA_AXIS in names:
    return DATA_AXIS
  if len(names) == 1:
    return names[0]
  raise ValueError(f"{caller}: mesh has axes {names}; name the batch axis {DATA_AXIS!r} "
                   f"(and an optional {MODEL_AXIS!r} axis for sharded state)")


def data_size(mesh: Mesh) -> int:
  """How many ways the data axis splits a batch."""
  return int(mesh.shape[data_axis(mesh)])


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch or run) axis split along the data axis, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(data_axis(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device of `mesh` holds the whole array."""
  return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh, caller: str, name: str = "batch_size") -> None:
  """A ValueError unless `batch_size` splits evenly over the data axis."""
  ways = data_size(mesh)
  if batch_size % ways:
    lower, upper = batch_size // ways * ways, -(-batch_size // ways) * ways
    hint = f"{lower} or {upper}" if lower else f"{upper}"
    raise ValueError(f"{caller}: {name} {batch_size} does not split over the {ways} devices of "
                     f"the mesh's {data_axis(mesh)!r} axis; use a multiple of {ways} (e.g. {hint})")


def _leaf_sharding(leaf: Any, mesh: Mesh) -> NamedSharding:
  shape = tuple(getattr(leaf, "shape", ()))
  if MODEL_AXIS not in mesh.axis_names or math.prod(shape) < MIN_SHARD_SIZE:
    return replicated(mesh)
  if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
    return replicated(mesh)
  ways = int(mesh.shape[MODEL_AXIS])
  candidates = [d for d in range(len(shape)) if shape[d] % ways == 0]
  if ways == 1 or not candidates:
    return replicated(mesh)
  dim = max(candidates, key=lambda d: (shape[d], -d))
  spec = [None] * len(shape)
  spec[dim] = MODEL_AXIS
  return NamedSharding(mesh, PartitionSpec(*spec))


def state_shardings(tree: Any, mesh: Mesh) -> Any:
  """Shardings for a training state: replicated, or split along the model axis if large.

  Without a ``"model"`` axis in `mesh` every leaf is replicated (plain data
  parallelism). With one, a leaf of at least :data:`MIN_SHARD_SIZE` elements is
  split along its largest dimension divisible by the model axis' size.

  Args:
    tree: any pytree of arrays (or ``jax.ShapeDtypeStruct``).
    mesh: the device mesh.

  Returns:
    A tree of ``NamedSharding`` like `tree`.

  Example:
    >>> import jax.numpy as jnp
    >>> shardings = state_shardings({"w": jnp.zeros((4, 3))}, data_mesh())
    >>> shardings["w"].spec == PartitionSpec()
    True
  """
  return jax.tree.map(lambda leaf: _leaf_sharding(leaf, mesh), tree)


def _host_value(leaf: Any) -> np.ndarray:
  return np.asarray(jax.device_get(leaf))


def _put_leaf(leaf: Any, sharding: jax.sharding.Sharding) -> jax.Array:
  if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
    return leaf
  if sharding.is_fully_addressable and (not isinstance(leaf, jax.Array)
                                        or leaf.is_fully_addressable):
    return jax.device_put(leaf, sharding)
  # A sharding over other processes' devices too: jax.device_put takes a host
  # value, the same in every process, and keeps this process's slices.
  if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
    data = jax.device_put(_host_value(jax.random.key_data(leaf)), sharding)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
  return jax.device_put(_host_value(leaf), sharding)


def put(tree: Any, shardings: Any) -> Any:
  """``jax.device_put(tree, shardings)`` that also works for shardings across processes.

  For a mesh spanning several processes, every process must pass the same
  (global) values; each keeps the slices of its own devices. PRNG-key arrays are
  placed through their key data. Leaves already placed as asked are returned as
  they are.

  Args:
    tree: a pytree of arrays (NumPy or JAX).
    shardings: one ``jax.sharding.Sharding`` for every leaf, or a tree of them
      like `tree`.

  Returns:
    The tree of placed ``jax.Array``.
  """
  if isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda leaf: _put_leaf(leaf, shardings), tree)
  return jax.tree.map(_put_leaf, tree, shardings)


class DataParallel:
  """How ``fit`` places its arrays on `mesh`: batches split, training state replicated.

  The state's shardings come from :func:`state_shardings` (replicated, or split
  along a ``"model"`` axis when the mesh has one); training arrays kept on the
  devices for a scanned epoch are replicated, and each batch is split along the
  data axis. ``out_shardings`` pins the outputs of a jitted step or epoch:
  the state as placed, everything else (losses, statistics) replicated.

  Args:
    mesh: the device mesh (a ``"data"`` axis, or one axis).
    state: the training state (a pytree of arrays), to derive its shardings.
  """

  def __init__(self, mesh: Mesh, state: Any):
    self.mesh = check_mesh(mesh, "DataParallel")
    self.batch_sharding = batch_sharding(mesh)
    self.replicated = replicated(mesh)
    self.state_shardings = state_shardings(state, mesh)
    self.out_shardings = (self.state_shardings, self.replicated)

  def place_state(self, state: Any) -> Any:
    """`state` placed with :attr:`state_shardings`."""
    return put(state, self.state_shardings)

  def replicate(self, array: Any) -> jax.Array:
    """`array` (the same in every process) copied to every device of the mesh."""
    return put(array, self.replicated)

  def split_batch(self, array: Any) -> jax.Array:
    """A batch (the same, global, in every process) split along the data axis."""
    return put(array, self.batch_sharding)


class RunParallel:
  """How ``sweep`` places its arrays: the leading run axis split along the data axis.

  Arrays every run reads (training and evaluation data) are replicated; runs
  never communicate. Without a mesh, everything stays on JAX's default device and
  ``jax.jit`` gets no shardings.

  Args:
    mesh: the device mesh, or None; it must hold this process's devices only.
    caller: named in errors.
  """

  def __init__(self, mesh: Mesh | None, caller: str = "RunParallel"):
    self.mesh = mesh
    self.ways = 1
    if mesh is None:
      return
    check_mesh(mesh, caller)
    here = jax.process_index()
    if any(d.process_index != here for d in mesh.devices.flat):
      raise ValueError(f"{caller}: mesh spans devices of other processes; runs are split over "
                       "this process's devices only (build the mesh from jax.local_devices())")
    self.ways = data_size(mesh)
    self.run_sharding = batch_sharding(mesh)
    self.replicated = replicated(mesh)

  def shared(self, array: Any) -> jax.Array:
    """An array every run reads."""
    return jax.device_put(array) if self.mesh is None else put(array, self.replicated)

  def runs(self, tree: Any) -> Any:
    """Arrays with a leading run axis, split along the mesh (as JAX arrays without one)."""
    if self.mesh is None:
      return jax.tree.map(jnp.asarray, tree)
    return put(tree, self.run_sharding)

  def jit(self, *run_axes: int | None) -> dict[str, Any]:
    """``jax.jit`` keyword arguments for arguments with (0) or without (None) a run axis."""
    if self.mesh is None:
      return {}
    return {"in_shardings": tuple(self.run_sharding if a == 0 else self.replicated
                                  for a in run_axes),
            "out_shardings": self.run_sharding}


def is_main_process() -> bool:
  """True in process 0: the one that should write files (histories, figures)."""
  return jax.process_index() == 0


def initialize_from_env(**kwargs: Any) -> bool:
  """Calls ``jax.distributed.initialize`` from environment variables, if they are set.

  Reads ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. With none of them set, does nothing
  and returns False (a single-process run); with all three, initializes and returns
  True (also when JAX's distributed runtime was already initialized). The number of
  CPU devices per process comes from JAX's own ``JAX_NUM_CPU_DEVICES``. Call it
  before any other JAX call (device lists, arrays).

  Args:
    **kwargs: passed on to ``jax.distributed.initialize`` (e.g.
      ``local_device_ids``, ``initialization_timeout``).

  Returns:
    Whether this process is part of a multi-process run.

  Raises:
    ValueError: only some of the variables are set, or they are not valid.

  Example:
    >>> initialize_from_env()  # no variables set: a single process
    False
  """
  values = {name: os.environ.get(name) for name in ENV_VARIABLES}
  given = [name for name, value in values.items() if value]
  if not given:
    return False
  missing = [name for name in ENV_VARIABLES if name not in given]
  if missing:
    raise ValueError(f"initialize_from_env: {', '.join(given)} set but {', '.join(missing)} "
                     f"not; set all of {', '.join(ENV_VARIABLES)} (or none for one process)")
  try:
    num_processes = int(values["JAX_NUM_PROCESSES"])
    process_id = int(values["JAX_PROCESS_ID"])
  except ValueError:
    raise ValueError(f"initialize_from_env: JAX_NUM_PROCESSES={values['JAX_NUM_PROCESSES']!r} "
                     f"and JAX_PROCESS_ID={values['JAX_PROCESS_ID']!r} must be integers"
                     ) from None
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ValueError(f"initialize_from_env: need JAX_NUM_PROCESSES ≥ 1 and 0 ≤ JAX_PROCESS_ID < "
                     f"JAX_NUM_PROCESSES, got {num_processes} and {process_id}")
  if jax.distributed.is_initialized():
    return True
  jax.distributed.initialize(values["JAX_COORDINATOR_ADDRESS"], num_processes=num_processes,
                             process_id=process_id, **kwargs)
  return True


__all__ = [
  "DATA_AXIS",
  "MIN_SHARD_SIZE",
  "MODEL_AXIS",
  "DataParallel",
  "batch_sharding",
  "check_batch_size",
  "check_mesh",
  "data_axis",
  "data_mesh",
  "data_size",
  "initialize_from_env",
  "is_main_process",
  "put",
  "replicated",
  "state_shardings",
]
