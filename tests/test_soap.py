"""SOAP against its paper's algorithm (and reference code) written out in NumPy float64.

The reference computes eigenbases with ``numpy.linalg.eigh`` and ``numpy.linalg.qr``
in float64 and shares no code with optlab. Eigenvector signs may differ between
the two; SOAP's update does not depend on them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _hard_gradients import assert_tree_finite, hard_gradients, run_scan

from optlab import optim
from optlab.optim._matrix_functions import eigenbasis, refresh_eigenbasis
from optlab.optim.soap import soap

STEPS = 8
SHAPES = {"w": (4, 3), "b": (2,), "s": (), "k": (2, 3, 2)}  # k: a tensor of order 3
RNG = np.random.default_rng(11)
GRADIENTS = [{k: RNG.normal(size=s) for k, s in SHAPES.items()} for _ in range(STEPS)]
THETA0 = {k: RNG.normal(size=s) for k, s in SHAPES.items()}

def run_optlab(tx, *, jit, steps=STEPS):
  params = {k: jnp.asarray(x, jnp.float32) for k, x in THETA0.items()}
  state = tx.init(params)

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  trajectory = []
  for t in range(steps):
    grads = {k: jnp.asarray(x, jnp.float32) for k, x in GRADIENTS[t].items()}
    params, state = step(params, state, grads)
    trajectory.append({k: np.asarray(x, np.float64) for k, x in params.items()})
  return trajectory, state


def outer(g, axis):
  """G_(i) G_(i)ᵀ: g contracted with itself over every axis but `axis` (G Gᵀ, Gᵀ G, g gᵀ)."""
  others = [d for d in range(g.ndim) if d != axis]
  return np.tensordot(g, g, axes=(others, others))


def rotate(x, bases, back=False):
  """Q_Lᵀ X Q_R (or Q_L X Q_Rᵀ with back): axis d of x multiplied by Q_dᵀ (or Q_d)."""
  for d, q in bases.items():
    x = np.moveaxis(np.tensordot(q if back else q.T, x, axes=(1, d)), 0, d)
  return x


def reference_soap(*, lr, b1, b2, shampoo_beta, eps, weight_decay, frequency, max_dim=10000,
                   precondition_1d=False):
  """Vyas et al. (2024), Algorithms 3 and 4, with the reference code's first step and sorting."""
  theta = {k: np.array(x, np.float64) for k, x in THETA0.items()}
  m = {k: np.zeros(s) for k, s in SHAPES.items()}
  v = {k: np.zeros(s) for k, s in SHAPES.items()}
  axes = {k: [d for d, n in enumerate(s) if n <= max_dim]
          if len(s) >= 2 or (len(s) == 1 and precondition_1d) else [] for k, s in SHAPES.items()}
  stats = {k: {} for k in SHAPES}
  bases = {k: {} for k in SHAPES}
  trajectory = []
  for t in range(STEPS):
    for k in SHAPES:
      g = np.asarray(GRADIENTS[t][k], np.float64)
      if t == 0:  # statistics and exact eigenbases (largest first) only; no step
        for d in axes[k]:
          stats[k][d] = (1 - shampoo_beta) * outer(g, d)
          bases[k][d] = np.linalg.eigh(stats[k][d])[1][:, ::-1]
        continue
      s = t
      rotated_g = rotate(g, bases[k])
      m[k] = b1 * m[k] + (1 - b1) * g  # first moment, original space
      v[k] = b2 * v[k] + (1 - b2) * rotated_g**2  # second moment, rotated space
      normalized = rotate(m[k], bases[k]) / (np.sqrt(v[k]) + eps)
      update = rotate(normalized, bases[k], back=True) * np.sqrt(1 - b2**s) / (1 - b1**s)
      theta[k] = theta[k] - lr * (update + weight_decay * theta[k])
      for d in axes[k]:
        stats[k][d] = shampoo_beta * stats[k][d] + (1 - shampoo_beta) * outer(g, d)
      if s % frequency == 0:  # one power-iteration step and QR, columns sorted first
        for d in axes[k]:
          q = bases[k][d]
          order = np.argsort(-np.diag(q.T @ stats[k][d] @ q))
          v[k] = np.take(v[k], order, axis=d)
          bases[k][d] = np.linalg.qr(stats[k][d] @ q[:, order])[0]
    trajectory.append({k: x.copy() for k, x in theta.items()})
  return trajectory


CONFIGS = {
    # Reference-code defaults but a refresh every 3 steps (at s = 3, 6) and weight decay; the
    # vector and the scalar get Adam.
    "two-sided": dict(lr=0.05, b1=0.95, b2=0.95, shampoo_beta=0.95, eps=1e-8, weight_decay=0.1,
                      frequency=3),
    # A separate β_s, refreshes every 2 steps, the 4-long axis left unrotated (one-sided), and
    # the vector rotated by its own 2×2 eigenbasis.
    "one-sided-1d": dict(lr=0.05, b1=0.9, b2=0.99, shampoo_beta=0.8, eps=1e-8, weight_decay=0.0,
                         frequency=2, max_dim=3, precondition_1d=True),
}


def build(config):
  return soap(config["lr"], config["b1"], config["b2"], config["shampoo_beta"], config["eps"],
              config["weight_decay"], precondition_frequency=config["frequency"],
              max_precond_dim=config.get("max_dim", 10000),
              precondition_1d=config.get("precondition_1d", False))


@pytest.mark.parametrize("name, jit", [
    ("two-sided", False), ("two-sided", True), ("one-sided-1d", True),
], ids=["two-sided-eager", "two-sided-jit", "one-sided-1d-jit"])
def test_paper_algorithm(name, jit):
  config = CONFIGS[name]
  trajectory, _ = run_optlab(build(config), jit=jit)
  expected = reference_soap(**config)
  for t, (a, e) in enumerate(zip(trajectory, expected, strict=True)):
    for k in e:
      np.testing.assert_allclose(a[k], e[k], rtol=1e-4, atol=1e-5, err_msg=f"step {t}, {k}")


def test_first_call_is_zero_and_later_vectors_get_adam():
  trajectory, state = run_optlab(soap(0.1, b1=0.9, b2=0.999, eps=1e-8), jit=True, steps=3)
  np.testing.assert_array_equal(trajectory[0]["b"], np.float32(THETA0["b"]))
  inner = state[0]
  assert inner.stats["b"] == () and inner.stats["s"] == ()
  assert [q.shape for q in inner.bases["w"]] == [(4, 4), (3, 3)]
  assert [q.shape for q in inner.bases["k"]] == [(2, 2), (3, 3), (2, 2)]
  # Adam (ε added to the uncorrected root) on the vector, from the second call on.
  theta, m, v = THETA0["b"].copy(), 0.0, 0.0
  for s, t in enumerate((1, 2), start=1):
    g = GRADIENTS[t]["b"]
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    theta = theta - 0.1 * np.sqrt(1 - 0.999**s) / (1 - 0.9**s) * m / (np.sqrt(v) + 1e-8)
  np.testing.assert_allclose(trajectory[-1]["b"], theta, rtol=1e-5, atol=1e-6)


# Eigenbasis helpers.


def test_eigenbasis_is_orthonormal_and_sorted():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(3, 5, 5))
  spd = a @ np.swapaxes(a, -1, -2)
  q = np.asarray(eigenbasis(jnp.asarray(spd, jnp.float32)), np.float64)
  for qi, si in zip(q, spd, strict=True):
    np.testing.assert_allclose(qi.T @ qi, np.eye(5), atol=1e-5)
    diagonal = qi.T @ si @ qi
    np.testing.assert_allclose(diagonal, np.diag(np.diag(diagonal)), atol=1e-4 * np.abs(si).max())
    np.testing.assert_allclose(np.diag(diagonal), np.sort(np.linalg.eigvalsh(si))[::-1],
                               rtol=1e-4, atol=1e-4)


def test_refresh_eigenbasis_sorts_and_converges():
  rng = np.random.default_rng(1)
  q0, _ = np.linalg.qr(rng.normal(size=(4, 4)))
  matrix = (q0 * np.array([1.0, 8.0, 0.5, 3.0])) @ q0.T
  new, order = refresh_eigenbasis(jnp.asarray(matrix, jnp.float32), jnp.asarray(q0, jnp.float32))
  np.testing.assert_array_equal(order, [1, 3, 0, 2])  # by decreasing estimated eigenvalue
  # From an exact eigenbasis, one power step and QR give it back (up to signs), sorted.
  np.testing.assert_allclose(np.abs(np.asarray(new).T @ q0[:, [1, 3, 0, 2]]), np.eye(4),
                             atol=1e-5)
  # From a rough basis, repeated refreshes converge to the eigenvectors.
  basis = jnp.eye(4)
  for _ in range(60):
    basis, _ = refresh_eigenbasis(jnp.asarray(matrix, jnp.float32), basis)
  np.testing.assert_allclose(np.abs(np.asarray(basis).T @ q0[:, [1, 3, 0, 2]]), np.eye(4),
                             atol=1e-3)


def test_eigenbasis_of_zero_and_rank_one_matrices_is_orthonormal():
  g = np.random.default_rng(2).normal(size=(5, 1))
  for matrix in (np.zeros((5, 5)), g @ g.T):
    q = eigenbasis(jnp.asarray(matrix, jnp.float32))
    new, order = refresh_eigenbasis(jnp.asarray(matrix, jnp.float32), q)
    for basis in (q, new):
      basis = np.asarray(basis, np.float64)
      assert np.all(np.isfinite(basis))
      np.testing.assert_allclose(basis.T @ basis, np.eye(5), atol=1e-5)
    assert sorted(np.asarray(order).tolist()) == list(range(5))


# Stability.


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_stays_finite_on_ill_conditioned_and_rank_deficient_gradients(dtype):
  gradients = jnp.asarray(hard_gradients(np.random.default_rng(3), 60), jnp.float32)
  params = {"w": jnp.ones((6, 4), dtype), "b": jnp.ones(4, dtype)}
  tx = soap(1e-2, precondition_frequency=3, precondition_1d=True, weight_decay=0.01)
  final, state = jax.jit(run_scan, static_argnums=0)(tx, params, gradients)
  assert_tree_finite(final)
  assert_tree_finite(state)
  assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(final))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state[0].stats))
  for q in state[0].bases["w"]:
    np.testing.assert_allclose(np.asarray(q).T @ np.asarray(q), np.eye(q.shape[0]), atol=1e-4)


def test_all_zero_gradients_leave_params_unchanged():
  params = {"w": jnp.ones((6, 4)), "b": jnp.ones(4)}
  tx = soap(0.1, precondition_frequency=2, precondition_1d=True)
  final, state = jax.jit(run_scan, static_argnums=0)(tx, params, jnp.zeros((5, 6, 4)))
  jax.tree.map(np.testing.assert_array_equal, final, params)
  assert_tree_finite(state)


# Bad input.

INVALID = [
    ({"learning_rate": -1e-3}, ValueError, r"learning_rate must be in \[0, inf\], got -0.001"),
    ({"b1": 1.0}, ValueError, r"b1 must be in \[0, 1\), got 1.0"),
    ({"b2": 1.0}, ValueError, r"b2 must be in \[0, 1\), got 1.0"),
    ({"b2": -0.1}, ValueError, r"b2 must be in \[0, 1\), got -0.1"),
    ({"shampoo_beta": 1.5}, ValueError, r"shampoo_beta must be in \[0, 1\), got 1.5"),
    ({"eps": 0.0}, ValueError, r"eps must be in \(0, inf\], got 0.0"),
    ({"eps": -1e-8}, ValueError, r"eps must be in \(0, inf\]"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay"),
    ({"precondition_frequency": 0}, ValueError, "precondition_frequency must be an integer ≥ 1"),
    ({"precondition_frequency": 2.0}, TypeError, "precondition_frequency must be an integer"),
    ({"max_precond_dim": 0}, ValueError, "max_precond_dim must be an integer ≥ 1, got 0"),
]


@pytest.mark.parametrize("kwargs, error, message", INVALID,
                         ids=[next(iter(k)) + f"={next(iter(k.values()))}" for k, _, _ in INVALID])
def test_invalid_arguments_raise(kwargs, error, message):
  with pytest.raises(error, match=message):
    optim.get("soap", **kwargs)


def test_weight_decay_needs_params():
  tx = soap(0.1, weight_decay=0.1)
  params = {"w": jnp.ones((2, 2))}
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(params, tx.init(params))


def test_registry_entry():
  entry = optim.info("soap")
  assert entry.tuned == ("learning_rate",)
  assert set(entry.search_space) == {"learning_rate", "b1", "b2", "eps"}
  assert set(entry.static_args) == {"precondition_frequency", "max_precond_dim",
                                    "precondition_1d"}
  tx = optim.get("soap", inject=True)
  state = tx.init({"w": jnp.ones((3, 2))})
  assert set(state.hyperparams) >= {"learning_rate", "b1", "b2", "eps", "weight_decay"}


# Both preconditioned methods against Adam on an ill-conditioned matrix quadratic.


def test_shampoo_and_soap_beat_adam_on_an_ill_conditioned_matrix_quadratic():
  """f(W) = ½ tr((W−W*)ᵀ A (W−W*) B) with κ(A) = κ(B) = 30 in random bases, 60 steps.

  Each optimizer at its best of four learning rates, all with β₁ = 0.9, β₂ = 0.99 (on this
  deterministic problem SOAP's default β₂ = 0.95 makes its denominators oscillate).
  """
  rng = np.random.default_rng(4)
  qa, _ = np.linalg.qr(rng.normal(size=(8, 8)))
  qb, _ = np.linalg.qr(rng.normal(size=(6, 6)))
  a = jnp.asarray((qa * np.geomspace(1.0, 1 / 30, 8)) @ qa.T, jnp.float32)
  b = jnp.asarray((qb * np.geomspace(1.0, 1 / 30, 6)) @ qb.T, jnp.float32)
  target = jnp.asarray(rng.normal(size=(8, 6)), jnp.float32)

  def loss(w):
    e = w - target
    return 0.5 * jnp.sum(e * (a @ e @ b))

  def final_losses(name, rates, **kwargs):
    tx = optim.get(name, inject=True, **kwargs)

    def train(rate):
      w = jnp.zeros((8, 6))
      state = tx.init(w)
      state.hyperparams["learning_rate"] = rate

      def body(carry, _):
        w, state = carry
        updates, state = tx.update(jax.grad(loss)(w), state, w)
        return (optax.apply_updates(w, updates), state), None

      (w, _), _ = jax.lax.scan(body, (w, state), None, length=60)
      return loss(w)

    return np.asarray(jax.jit(jax.vmap(train))(jnp.asarray(rates, jnp.float32)))

  rates = [0.01, 0.03, 0.1, 0.3]
  betas = {"b1": 0.9, "b2": 0.99}
  adam = np.nanmin(final_losses("adam", rates, **betas))
  shampoo_loss = np.nanmin(final_losses("shampoo", rates, precondition_frequency=5,
                                        start_preconditioning_step=5, **betas))
  soap_loss = np.nanmin(final_losses("soap", rates, precondition_frequency=5, **betas))
  # Measured: Adam 2.6e-3, Shampoo 5.1e-4, SOAP 3.1e-4 (from 1.4 at W = 0).
  assert shampoo_loss < adam, (shampoo_loss, adam)
  assert soap_loss < adam, (soap_loss, adam)
