"""Per-layer update statistics in fit, and monitors (sharpness tracking) in the history."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import train
from optlab.diagnostics import hessian, updates
from optlab.models import MLP
from optlab.optim import _fusion

rng = np.random.default_rng(0)
X = rng.normal(size=(96, 4)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int32) + (X[:, 2] > 1).astype(np.int32)
LAYERS = ["head/bias", "head/kernel", "layers/0/bias", "layers/0/kernel"]


def model(seed=0):
  return MLP(4, [8], 3, rngs=nnx.Rngs(seed))


def test_update_statistics_equal_hand_computation_for_one_sgd_step():
  params = nnx.state(model(), nnx.Param)
  params = jax.tree.map(lambda p: p + 0.1, params)  # no zero biases
  grads = jax.tree.map(lambda p: jnp.sin(3.0 * p), params)
  lr = 0.05
  step, _ = optax.sgd(lr).update(grads, optax.sgd(lr).init(params), params)
  stats = updates.update_statistics(params, step, grads)
  assert list(stats) == updates.update_statistic_names(params)
  assert list(stats) == [f"{kind}/{p}" for kind in ("update_ratio", "effective_lr") for p in LAYERS]
  jitted = jax.jit(updates.update_statistics)(params, step, grads)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), jitted, stats)
  for path in LAYERS:
    keys = path.split("/")
    p, g = params, grads
    for k in keys:
      p, g = p[int(k) if k.isdigit() else k], g[int(k) if k.isdigit() else k]
    p, g = np.asarray(p[...], np.float64), np.asarray(g[...], np.float64)
    np.testing.assert_allclose(stats[f"update_ratio/{path}"],
                               lr * np.linalg.norm(g) / np.linalg.norm(p), rtol=1e-5)
    np.testing.assert_allclose(stats[f"effective_lr/{path}"], lr, rtol=1e-5)
  without_grads = updates.update_statistics(params, step)
  assert all(k.startswith("update_ratio/") for k in without_grads)
  zero = updates.update_statistics({"b": jnp.zeros(3)}, {"b": jnp.ones(3)}, {"b": jnp.zeros(3)})
  assert np.isnan(zero["update_ratio/b"]) and np.isnan(zero["effective_lr/b"])


def test_update_statistics_reject_mismatched_trees():
  with pytest.raises(ValueError, match="updates has tree structure"):
    updates.update_statistics({"a": jnp.ones(2), "b": jnp.ones(2)}, {"a": jnp.ones(2)})
  with pytest.raises(ValueError, match="grads has tree structure"):
    updates.update_statistics({"a": jnp.ones(2)}, {"a": jnp.ones(2)}, [jnp.ones(2)])


def test_fit_logs_epoch_averaged_update_statistics_in_both_loops():
  lr = 0.1
  kwargs = dict(epochs=2, batch_size=16, progress=False, update_stats=True)
  scanned = train.fit(model(), optax.sgd(lr), (X, Y), scan=True, **kwargs)
  looped = train.fit(model(), optax.sgd(lr), (X, Y), scan=False, **kwargs)
  for result in (scanned, looped):
    for record in result.history:
      for path in LAYERS:
        # Plain SGD: every step's effective learning rate is lr (zero-initialized biases
        # make the first step's ratio undefined; it is left out of the average).
        np.testing.assert_allclose(record[f"effective_lr/{path}"], lr, rtol=1e-5)
        assert 0 < record[f"update_ratio/{path}"] < 1
  for a, b in zip(scanned.history, looped.history, strict=True):
    for key in a:
      if key.startswith(("update_ratio/", "effective_lr/")):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4)
  epochs, values = updates.layer_curves(scanned, "update_ratio")["layers/0/kernel"]
  assert epochs.tolist() == [0, 1] and values.shape == (2,)


def test_update_stats_leave_the_default_run_unchanged_and_compile_once():
  traces = []

  def counting_loss(logits, labels):
    traces.append(1)
    return train.cross_entropy(logits, labels)

  kwargs = dict(epochs=2, batch_size=16, progress=False, loss=counting_loss)
  plain = train.fit(model(), optax.adam(0.01), (X, Y), **kwargs)
  assert len(traces) == 1  # one trace of the scanned epoch
  assert not any("/" in key for key in plain.history[-1])
  stats = train.fit(model(), optax.adam(0.01), (X, Y), update_stats=True, **kwargs)
  assert len(traces) == 2
  if _fusion.single_pass_updates():
    # XLA:CPU's multi-output fusion (optlab's default) fuses the step differently when the
    # statistics also read the update, and LLVM contracts a·b + c into an FMA differently:
    # the same run up to a few roundings (measured ≤ 2.1e-7 relative after 12 steps).
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 stats.state.params, plain.state.params)
    return
  assert [h["train_loss"] for h in stats.history] == [h["train_loss"] for h in plain.history]
  jax.tree.map(np.testing.assert_array_equal, stats.state.params, plain.state.params)


def test_resume_with_update_stats_is_bit_identical(tmp_path):
  kwargs = dict(epochs=2, batch_size=16, seed=1, progress=False, update_stats=True)
  full = train.fit(model(), optax.adam(0.01), (X, Y), checkpoint_dir=tmp_path / "full", **kwargs)
  train.fit(model(), optax.adam(0.01), (X, Y), checkpoint_dir=tmp_path / "split",
            stop_after_epoch=0, **kwargs)
  resumed = train.fit(model(seed=5), optax.adam(0.01), (X, Y), checkpoint_dir=tmp_path / "split",
                      resume=True, **kwargs)
  jax.tree.map(np.testing.assert_array_equal, full.state.params, resumed.state.params)
  assert full.history[-1] == {**resumed.history[-1], "epoch_seconds": full.history[-1][
      "epoch_seconds"]}


def test_monitors_track_sharpness_during_training():
  network = model()
  graphdef = nnx.graphdef(network)  # the structure fit splits the model into
  x, y = jnp.asarray(X), jnp.asarray(Y)

  def train_loss(params, model_state):
    logits = nnx.merge(graphdef, params, model_state)(x)
    return train.cross_entropy(logits, y)

  tracker = hessian.SharpnessTracker(train_loss, num_iterations=10, warmup_iterations=100)
  result = train.fit(network, optax.sgd(0.5), (X, Y), epochs=3, batch_size=96, progress=False,
                     monitors={"sharpness": tracker})
  logged = [h["sharpness"] for h in result.history]
  assert logged == tracker.values and len(logged) == 3
  _, params, rest = nnx.split(result.model, nnx.Param, ...)
  for _ in range(10):  # 100 more iterations at the final parameters: converged
    converged = tracker(params, rest)
  np.testing.assert_allclose(logged[-1], converged, rtol=1e-3)


@pytest.mark.parametrize(
    ("monitors", "error", "match"),
    [
        ({"val_loss": lambda p, s: 0.0}, ValueError, "clashes with the loop's own logs"),
        ({"update_ratio/x": lambda p, s: 0.0}, ValueError, "clashes"),
        ({"m": 3.0}, TypeError, "must be callable"),
        ([("m", lambda p, s: 0.0)], TypeError, "monitors must be a dict"),
        ({"m": lambda p, s: jnp.ones(2)}, TypeError, "must return a real scalar"),
    ],
)
def test_bad_monitors_are_refused(monitors, error, match):
  with pytest.raises(error, match=match):
    train.fit(model(), optax.sgd(0.1), (X, Y), epochs=1, batch_size=32, progress=False,
              monitors=monitors)


def test_layer_curves_and_plot_read_a_history(tmp_path):
  matplotlib = pytest.importorskip("matplotlib")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  history = [{"epoch": e, "update_ratio/w": 0.01 * (e + 1), "effective_lr/w": 0.1,
              "update_ratio/b": None} for e in range(3)]
  curves = updates.layer_curves(history)
  assert curves["w"][1].tolist() == [0.01, 0.02, 0.03]
  assert np.isnan(curves["b"][1]).all()  # undefined (stored as null) reads back as NaN
  fig, ax = plt.subplots()
  assert updates.plot_update_statistics(history, kind="effective_lr", ax=ax) is ax
  assert len(ax.lines) == 1
  plt.close(fig)
  with pytest.raises(ValueError, match="update_stats=True"):
    updates.layer_curves([{"epoch": 0, "train_loss": 1.0}])
  with pytest.raises(ValueError, match="kind: expected one of"):
    updates.layer_curves(history, kind="ratio")
  with pytest.raises(ValueError, match="not logged"):
    updates.plot_update_statistics(history, layers=["v"], ax=ax)
