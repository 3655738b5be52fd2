"""fit(..., packed=...): parameters and optimizer state as packed buffers, same runs as unpacked."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import models, optim
from optlab.optim._fusion import single_pass_updates
from optlab.optim.packed import PackedState, Packing, packed
from optlab.train import EarlyStopping, ReduceLROnPlateau, distributed
from optlab.train.loop import fit
from optlab.train.packing import ELEMENTWISE, is_elementwise, resolve_mode

X = np.random.default_rng(0).normal(size=(128, 6)).astype(np.float32)
Y = ((X[:, 0] > 0).astype(np.int32) + (X[:, 1] > 0.5)).astype(np.int32)
XV = np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32)
YV = ((XV[:, 0] > 0).astype(np.int32) + (XV[:, 1] > 0.5)).astype(np.int32)


def _model(seed: int = 0, dropout: float = 0.0) -> nnx.Module:
  return models.MLP(6, [8, 8], 3, dropout=dropout, rngs=nnx.Rngs(seed))


def _fit(tx, packed_arg, **kwargs):
  kwargs = {"validation": (XV, YV), "epochs": 2, "batch_size": 32, "progress": False, **kwargs}
  return fit(kwargs.pop("model", None) or _model(), tx, (X, Y), packed=packed_arg, **kwargs)


def _params(result) -> list[np.ndarray]:
  return [np.asarray(p) for p in jax.tree.leaves(nnx.state(result.model, nnx.Param))]


def _difference(a, b) -> float:
  return max(float(np.max(np.abs(x - y))) for x, y in zip(_params(a), _params(b), strict=True))


def _logged(result) -> list[dict[str, float]]:
  return [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in result.history]


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "loop"])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_packed_fit_equals_unpacked(name, scan):
  make = {"sgd": lambda: optim.get("sgd", learning_rate=0.1, momentum=0.9),
          "adam": lambda: optim.get("adam", learning_rate=0.01)}[name]
  tree = _fit(make(), False, scan=scan)
  flat = _fit(make(), True, scan=scan)
  assert flat.packing is not None and tree.packing is None
  # The train state holds one parameter buffer; the optimizer's state is on it.
  assert isinstance(flat.state.params, tuple) and len(flat.state.params) == 1
  assert flat.state.params[0].shape == (flat.packing.num_params,)
  assert all(leaf.ndim <= 1 for leaf in jax.tree.leaves(flat.state.opt_state))
  np.testing.assert_array_equal(np.concatenate([p.ravel() for p in jax.tree.leaves(
      flat.packing.unpack(flat.state.params))]), np.concatenate([p.ravel() for p in _params(
          flat)]))
  if name == "sgd" and not single_pass_updates() and jax.default_backend() == "cpu":
    assert _difference(tree, flat) == 0.0
    assert _logged(tree) == _logged(flat)
  elif name == "sgd":  # XLA:CPU multi-output fusion, or a GPU: FMAs contracted per fusion shape
    assert _difference(tree, flat) < 1e-6
  else:  # XLA rewrites m̂/(√v̂+ε) differently for small leaves and one buffer: ~1 ulp
    assert _difference(tree, flat) < 1e-6
    np.testing.assert_allclose([h["val_loss"] for h in flat.history],
                               [h["val_loss"] for h in tree.history], rtol=1e-6)


def test_optax_adam_per_leaf_equals_unpacked_within_rounding():
  # Not from the registry: packed=True picks the always-exact per-leaf mode. XLA
  # simplifies optax's m̂/(√v̂+ε) differently inside it: 1e-7 after 8 steps.
  tree = _fit(optax.adam(0.01), False, scan=False, validation=None)
  flat = _fit(optax.adam(0.01), True, scan=False, validation=None)
  assert isinstance(flat.state.opt_state[0], PackedState)
  assert _difference(tree, flat) < 1e-6


@pytest.mark.parametrize(("name", "hyperparams", "tolerance"), [
    ("muon", {"learning_rate": 0.02}, 2e-5),
    ("adam_mini", {"learning_rate": 0.01}, 1e-6),
])
def test_per_leaf_optimizers_equal_unpacked(name, hyperparams, tolerance):
  kwargs = {"scan": False, "validation": None, "epochs": 1}
  tree = _fit(optim.get(name, **hyperparams), False, **kwargs)
  flat = _fit(optim.get(name, **hyperparams), True, **kwargs)  # picks "per_leaf" itself
  assert isinstance(flat.state.opt_state[0], PackedState)
  assert _difference(tree, flat) < tolerance


def test_mode_is_chosen_from_the_registry_and_unsafe_combinations_raise(tmp_path):
  assert resolve_mode(True, optim.get("adam")) == "elementwise"
  assert resolve_mode(True, optim.get("adamw", mask=lambda p: p)) == "per_leaf"
  assert resolve_mode(True, optim.get("muon")) == "per_leaf"
  assert resolve_mode(True, optim.get("ema", base="adam")) == "elementwise"
  assert resolve_mode(True, optim.get("ema", base="shampoo")) == "per_leaf"
  assert resolve_mode(True, optax.adam(1e-3)) == "per_leaf"
  assert resolve_mode("elementwise", optax.adam(1e-3)) == "elementwise"  # the user's word
  assert resolve_mode(False, optim.get("muon")) is None
  assert is_elementwise(None) is None
  with pytest.raises(ValueError, match=r"'optax\.lamb'.*per_leaf"):
    _fit(optim.get("optax.lamb"), "elementwise")
  with pytest.raises(ValueError, match="packed must be False, True, 'elementwise' or"):
    _fit(optim.get("adam"), "yes")
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
  with pytest.raises(ValueError, match="'model' axis"):
    _fit(optim.get("adam"), True, mesh=mesh)
  _fit(optim.get("sgd"), "per_leaf", epochs=1, history_path=tmp_path / "h.jsonl")
  start = json.loads((tmp_path / "h.jsonl").read_text().splitlines()[0])
  assert start["kind"] == "run_start" and start["packed"] == "per_leaf"


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_every_elementwise_optimizer_gives_the_same_numbers_on_buffers(name):
  tree = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32),
          "b": jnp.asarray(np.random.default_rng(1).normal(size=(3,)), jnp.float32)}
  packing = Packing.of(tree)
  tx = optim.get(name)
  flat_tx = packed(tx, packing)
  state, flat_state = tx.init(tree), flat_tx.init(packing.pack(tree))
  params, buffers = tree, packing.pack(tree)
  for step in range(3):
    grads = jax.tree.map(lambda p, s=step: jnp.sin(p * (s + 1.0)), params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    flat_updates, flat_state = flat_tx.update(packing.pack(grads), flat_state, buffers)
    buffers = optax.apply_updates(buffers, flat_updates)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), params,
               packing.unpack(buffers))


def test_l2_clipping_accumulation_and_bfloat16_compute_packed():
  kwargs = {"l2": 1e-3, "clip_norm": 0.05, "accumulate_steps": 2,
            "compute_dtype": jnp.bfloat16, "batch_size": 16}
  kwargs |= {"scan": False, "validation": None}
  tree = _fit(optim.get("adam", learning_rate=0.01), False, **kwargs)
  flat = _fit(optim.get("adam", learning_rate=0.01), True, **kwargs)
  # The clipping norm is summed leaf by leaf on the unpacked updates; XLA fuses the
  # scaling differently: measured 9e-8.
  assert _difference(tree, flat) < 1e-6
  assert flat.state.params[0].dtype == jnp.float32


def test_learning_rate_scale_and_non_finite_steps_packed():
  x = X.copy()
  x[5] = np.nan  # every batch holding example 5 gives non-finite gradients: skipped
  runs = {}
  for packed_arg in (False, True):
    reducer = ReduceLROnPlateau("train_loss", factor=0.5, patience=0, min_delta=10.0)
    runs[packed_arg] = fit(_model(), optim.get("adam", learning_rate=0.01), (x, Y), epochs=3,
                           batch_size=32, scan=False, packed=packed_arg, callbacks=[reducer],
                           progress=False)
  tree, flat = runs[False], runs[True]
  assert flat.skipped_steps == tree.skipped_steps > 0
  assert [h.get("lr_scale") for h in flat.history] == [None, 0.5, 0.25]
  assert float(flat.state.opt_state[-1].scale) == 0.25
  assert _difference(tree, flat) < 1e-6


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "loop"])
def test_update_statistics_and_monitors_are_per_layer_when_packed(scan):
  monitors = {"param_norm": lambda params, state: optax.tree.norm(params)}
  kwargs = {"scan": scan, "update_stats": True, "monitors": monitors, "epochs": 1,
            "validation": (XV[:32], YV[:32])}
  tree = _fit(optim.get("adam", learning_rate=0.01), False, **kwargs)
  flat = _fit(optim.get("adam", learning_rate=0.01), "per_leaf", **kwargs)
  a, b = tree.history[-1], flat.history[-1]
  assert set(a) == set(b) and "update_ratio/layers/0/kernel" in b
  for key in a:
    if key != "epoch_seconds":
      np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-7, err_msg=key)


@pytest.mark.parametrize(("name", "evaluate_at"), [
    ("ema", optim.averaged_params), ("swa", optim.averaged_params),
    ("schedule_free_adamw", optim.schedule_free_eval)])
def test_averaged_parameters_are_found_in_the_packed_state(name, evaluate_at):
  def make():
    if name == "schedule_free_adamw":
      return optim.get(name, learning_rate=0.01)
    return optim.get(name, base="adam", learning_rate=0.01, **(
        {"decay": 0.9} if name == "ema" else {}))

  kwargs = {"evaluate_at": evaluate_at, "scan": False, "validation": None}
  tree = _fit(make(), False, **kwargs)
  for mode in ("elementwise", "per_leaf"):  # averages on the buffers, or in packed tree state
    flat = _fit(make(), mode, **kwargs)
    assert _difference(tree, flat) < 1e-6, mode  # the returned model holds the averages


def test_early_stopping_restores_the_best_packed_parameters():
  rng = np.random.default_rng(0)
  x, x_val = (rng.normal(size=(64, 6)).astype(np.float32) for _ in range(2))
  # Random labels: the validation loss bottoms out early, then rises as the net memorizes.
  y, y_val = (rng.integers(0, 3, size=64).astype(np.int32) for _ in range(2))
  runs = {}
  for packed_arg in (False, True):
    runs[packed_arg] = fit(
        models.MLP(6, [32], 3, rngs=nnx.Rngs(0)), optim.get("adam", learning_rate=0.05),
        (x, y), validation=(x_val, y_val), epochs=60, batch_size=16, progress=False, scan=False,
        packed=packed_arg, callbacks=[EarlyStopping("val_loss", patience=1)])
  tree, flat = runs[False], runs[True]
  assert flat.status == tree.status == "early_stopped"
  assert flat.best_epoch == tree.best_epoch and len(flat.history) == len(tree.history)
  assert _difference(tree, flat) < 1e-6
  # The best parameters went back into the train state as buffers.
  np.testing.assert_allclose(np.concatenate([p.ravel() for p in _params(flat)]),
                             np.concatenate([np.asarray(p).ravel() for p in jax.tree.leaves(
                                 flat.packing.unpack(flat.state.params))]))


def test_packed_checkpoint_resumes_packed_bit_for_bit(tmp_path):
  def run(directory, **kwargs):
    return _fit(optim.get("adam", learning_rate=0.01), kwargs.pop("packed_arg", True),
                model=_model(dropout=0.2), epochs=2, seed=1, checkpoint_dir=directory,
                scan=False, callbacks=[EarlyStopping("val_loss", patience=50)], **kwargs)

  full = run(tmp_path / "full")
  assert run(tmp_path / "split", stop_after_epoch=0).status == "interrupted"
  resumed = run(tmp_path / "split", resume=True)
  assert resumed.status == "completed"
  assert _difference(full, resumed) == 0.0
  assert _logged(full) == _logged(resumed)
  # Another representation: a clear error, not orbax's.
  with pytest.raises(ValueError, match=r"written with packed='elementwise'.*packed='per_leaf'"):
    run(tmp_path / "split", resume=True, packed_arg="per_leaf")


_MESH_SCRIPT = """
import sys
import jax
import numpy as np
from flax import nnx
sys.path.insert(0, sys.argv[1])
from test_fit_packed import X, Y, _model
from optlab import optim
from optlab.train import distributed
from optlab.train.loop import fit
result = fit(_model(), optim.get("adam", learning_rate=0.01), (X, Y), epochs=1, batch_size=32,
             packed=True, progress=False, mesh=distributed.data_mesh())
buffer = result.state.params[0]
np.savez(sys.argv[2], devices=len(buffer.sharding.device_set), spec=repr(buffer.sharding.spec),
         **{f"param{i}": p for i, p in enumerate(jax.tree.leaves(nnx.state(result.model,
                                                                           nnx.Param)))})
"""


def test_data_parallel_packed_matches_one_device(tmp_path):
  out = tmp_path / "mesh.npz"
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "OPTLAB_CACHE_DIR": "off",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "PYTHONPATH": str(pathlib.Path(__file__).parents[1])}
  here = str(pathlib.Path(__file__).parent)
  proc = subprocess.Popen([sys.executable, "-c", _MESH_SCRIPT, here, str(out)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  # Meanwhile, here: one device (the scanned epoch), and the Python loop on a 1-device mesh.
  one = _fit(optim.get("adam", learning_rate=0.01), True, validation=None, epochs=1)
  looped = _fit(optim.get("adam", learning_rate=0.01), True, validation=None, epochs=1,
                scan=False, mesh=distributed.data_mesh())
  assert _difference(one, looped) < 1e-6
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-3000:]
  with np.load(out) as four:  # the scanned epoch, batches split over 4 devices
    assert int(four["devices"]) == 4  # the buffer replicated on all 4
    assert str(four["spec"]) == repr(jax.sharding.PartitionSpec())
    params = [four[f"param{i}"] for i in range(len(_params(one)))]
  # The child computes on CPUs; on a GPU machine the reference here ran on the GPU, whose
  # float32 matrix products use TF32 by default (measured on an H200: 6e-5 apart).
  tolerance = 1e-5 if jax.default_backend() == "cpu" else 1e-3
  assert max(float(np.max(np.abs(a - b))) for a, b in zip(params, _params(one),
                                                           strict=True)) < tolerance


def test_fit_packed_benchmark_runs_small():
  from optlab.benchmarks import runner
  from optlab.benchmarks.fit_packed import fit_packed

  assert runner.BENCHMARKS["fit_packed"] is fit_packed
  values = fit_packed(depth=2, width=4, batch_size=8, steps=2, epochs=2, paths=("loop",))
  assert values["max_abs_difference_loop"] == 0.0 and values["leaves"] == 6
  assert list(values)[-1].startswith("ratio_")
