"""Loss-landscape slices: interpolation, filter-normalized directions, 2-D slices, plots."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optlab.diagnostics import landscape
from optlab.train.paths import flatten_with_paths


def quadratic_loss(p):
  return jnp.sum((p["w"] - 1.0) ** 2) + 0.5 * jnp.sum(p["b"] ** 2)


def make_params(key, scale=1.0):
  k1, k2 = jax.random.split(key)
  return {"w": scale * jax.random.normal(k1, (3, 4)), "b": jax.random.normal(k2, (4,))}


def test_interpolation_endpoints_equal_the_losses_at_a_and_b(getkey):
  a, b = make_params(getkey()), make_params(getkey(), scale=2.0)
  alphas, losses = landscape.interpolate(quadratic_loss, a, b, num=7, chunk_size=3)
  assert alphas.shape == losses.shape == (7,)
  assert float(alphas[0]) == 0.0 and float(alphas[-1]) == 1.0
  np.testing.assert_allclose(losses[0], quadratic_loss(a), rtol=1e-6)
  np.testing.assert_allclose(losses[-1], quadratic_loss(b), rtol=1e-6)
  middle = jax.tree.map(lambda x, y: 0.5 * (x + y), a, b)
  np.testing.assert_allclose(losses[3], quadratic_loss(middle), rtol=1e-5)
  alphas, losses = landscape.interpolate(quadratic_loss, a, b, num=5, extrapolate=0.5)
  np.testing.assert_allclose(alphas, [-0.5, 0.0, 0.5, 1.0, 1.5])
  np.testing.assert_allclose(losses[3], quadratic_loss(b), rtol=1e-6)


def test_filter_normalized_direction_matches_per_filter_norms_of_dense_and_conv_kernels(key):
  rngs = nnx.Rngs(0)
  model = nnx.Dict(conv=nnx.Conv(2, 5, (3, 3), rngs=rngs), dense=nnx.Linear(7, 4, rngs=rngs))
  params = nnx.state(model, nnx.Param)
  direction = landscape.filter_normalized_direction(params, key)
  paths, leaves = flatten_with_paths(params)
  _, directions = flatten_with_paths(direction)
  seen = set()
  for path, p, d in zip(paths, leaves, directions, strict=True):
    assert d.shape == p.shape and d.dtype == p.dtype
    if p.ndim == 1:
      np.testing.assert_array_equal(d, 0.0)  # ignore_biases=True: biases stay put
      continue
    seen.add(p.ndim)
    axes = tuple(range(p.ndim - 1))  # a filter: one output channel, the last axis in flax
    d, p = np.asarray(d, np.float64), np.asarray(p, np.float64)
    np.testing.assert_allclose(np.sqrt(np.sum(d**2, axis=axes)), np.sqrt(np.sum(p**2, axis=axes)),
                               rtol=1e-5, err_msg=path)
    assert not np.allclose(d, p)  # a random direction, not the parameters
  assert seen == {2, 4}  # Dense (in, out) and Conv (kh, kw, in, out) kernels both checked
  kept = landscape.filter_normalized_direction(params, key, ignore_biases=False)
  np.testing.assert_array_equal(kept["conv"]["bias"][...], params["conv"]["bias"][...])


def test_slice_center_equals_the_loss_at_params(key):
  params = make_params(key)
  alphas, _, losses = landscape.slice_2d(quadratic_loss, params, key=key, num=5, span=0.5,
                                         chunk_size=4)
  assert losses.shape == (5, 5)
  np.testing.assert_allclose(alphas, [-0.5, -0.25, 0.0, 0.25, 0.5])
  assert float(alphas[2]) == 0.0
  np.testing.assert_allclose(losses[2, 2], quadratic_loss(params), rtol=1e-6)
  # losses[i, j] is at θ + αᵢ δ + βⱼ η with the given directions.
  delta, eta = make_params(jax.random.fold_in(key, 1)), make_params(jax.random.fold_in(key, 2))
  _, _, losses = landscape.slice_2d(quadratic_loss, params, num=3, directions=(delta, eta))
  corner = jax.tree.map(lambda p, d, e: p - d + e, params, delta, eta)
  np.testing.assert_allclose(losses[0, 2], quadratic_loss(corner), rtol=1e-5)


def test_plots_draw_on_given_axes(key):
  matplotlib = pytest.importorskip("matplotlib")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  params = make_params(key)
  fig, (left, right) = plt.subplots(1, 2)
  alphas, losses = landscape.interpolate(quadratic_loss, params, make_params(key, 2.0), num=5)
  assert landscape.plot_interpolation(alphas, losses, ax=left, label="a→b") is left
  a, b, z = landscape.slice_2d(quadratic_loss, params, key=key, num=5)
  assert landscape.plot_slice(a, b, z, ax=right, log=True, levels=5) is right
  assert len(left.lines) >= 1
  plt.close(fig)


def test_bad_inputs_raise_clear_errors(key):
  a = make_params(key)
  with pytest.raises(ValueError, match="params_b: its tree structure"):
    landscape.interpolate(quadratic_loss, a, {"w": a["w"]})
  with pytest.raises(ValueError, match="leaf 1 has shape"):
    landscape.interpolate(quadratic_loss, a, {"b": a["b"], "w": jnp.ones((4, 3))})
  with pytest.raises(ValueError, match="num: must be ≥ 2"):
    landscape.interpolate(quadratic_loss, a, a, num=1)
  with pytest.raises(ValueError, match="extrapolate"):
    landscape.interpolate(quadratic_loss, a, a, extrapolate=-1.0)
  with pytest.raises(ValueError, match="give a PRNG `key`"):
    landscape.slice_2d(quadratic_loss, a)
  with pytest.raises(ValueError, match="span"):
    landscape.slice_2d(quadratic_loss, a, key=key, span=0.0)
  with pytest.raises(ValueError, match=r"directions\[1\]: its tree structure"):
    landscape.slice_2d(quadratic_loss, a, directions=(a, {"w": a["w"]}))
  with pytest.raises(TypeError, match="dtype int32"):
    landscape.filter_normalized_direction({"w": jnp.ones((2, 2), jnp.int32)}, key)
