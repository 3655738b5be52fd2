"""Registry-driven conformance: every optlab optimizer passes the same checks.

Each optimizer registered by optlab (``optim.names("optlab")``) must converge on
a quadratic, give the same result eagerly and under `jit`, keep the dtype of
float32 and bfloat16 parameters, not recompile on its second step, work when its
hyperparameters are injected and `vmap`-ped over a batch of learning rates, and
keep the tree structure of its state across an update.
"""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim

OPTLAB_OPTIMIZERS = optim.names("optlab")

# Hyperparameters under which each optimizer converges on the test quadratic in
# STEPS steps (curvatures 1..10); everything else is the registry default.
CONFORMANCE_HYPERPARAMS = {
    "gd": {"learning_rate": 0.15},
    "sgd": {"learning_rate": 0.15},
    "heavy_ball": {"learning_rate": 0.1, "momentum": 0.5},
    "nesterov": {"learning_rate": 0.1, "momentum": 0.5},
    "adagrad": {"learning_rate": 0.5},
    "rmsprop": {"learning_rate": 0.01},
    "rmsprop_centered": {"learning_rate": 0.01},
    "adadelta": {"learning_rate": 1.0, "eps": 1e-2},  # ε sets the first step size
    "adam": {"learning_rate": 0.05},
    "adamw": {"learning_rate": 0.05, "weight_decay": 0.0},
    "amsgrad": {"learning_rate": 0.05},
    "adamax": {"learning_rate": 0.05},
    "nadam": {"learning_rate": 0.05},
    "radam": {"learning_rate": 0.05},
    # Shampoo/SOAP: refresh every 2 steps and precondition from step 1, so short checks use
    # them; Shampoo also preconditions the vector "w", with a ridge (ε_M = 1e-3) above float32
    # eigenvalue noise so that jit and eager agree to 1e-5 (see scale_by_shampoo).
    "shampoo": {"learning_rate": 0.05, "precondition_frequency": 2,
                "start_preconditioning_step": 1, "precondition_1d": True, "matrix_eps": 1e-3},
    # SOAP: "b" keeps an exactly rank-1 gradient, so its rotated null-space coordinates hold only
    # float32 rounding (~1e-7·|G|), which Adam's normalization would blow up to O(1) steps with
    # ε = 1e-8; ε = 1e-2 keeps that noise out, so jit and eager agree to 1e-5.
    "soap": {"learning_rate": 0.05, "precondition_frequency": 2, "eps": 1e-2},
    # Muon: "b" (2×3) gets Muon, "w" (vector) AdamW at Muon's rate (None), so lr = 0 stops both.
    "muon": {"learning_rate": 0.05, "adam_learning_rate": None},
    "mars": {"learning_rate": 0.05},
    "cautious_adamw": {"learning_rate": 0.05, "weight_decay": 0.0},
    "cautious_lion": {"learning_rate": 0.01},
    "adam_mini": {"learning_rate": 0.05},
    # Wrappers (base by registry name, its learning rate the wrapper's own) and second order.
    "lookahead": {"base": "sgd", "learning_rate": 0.15, "sync_period": 3},
    "schedule_free": {"base": "sgd", "learning_rate": 0.1},
    "schedule_free_sgd": {"learning_rate": 0.1},
    "schedule_free_adamw": {"learning_rate": 0.05},
    "ema": {"base": "adam", "learning_rate": 0.05, "decay": 0.9},
    "swa": {"base": "sgd", "learning_rate": 0.15, "start_step": 2},
    "newton": {"learning_rate": 1.0},  # exact in one step on a quadratic
    "lbfgs": {"learning_rate": 1.0},
}
STEPS = 300
CURVATURES = jnp.linspace(1.0, 10.0, 6)


def loss(params):
  """½ Σ c_i (w_i − 1)² + ½ Σ b_j²: a tree-shaped quadratic minimized at w = 1, b = 0."""
  w, b = params["w"], params["b"]
  return 0.5 * jnp.sum(CURVATURES * (w - 1.0) ** 2) + 0.5 * jnp.sum(b**2)


def initial_params(dtype=jnp.float32):
  return {"w": jnp.zeros(6, dtype), "b": jnp.full((2, 3), 2.0, dtype)}


def hyperparams(name):
  return CONFORMANCE_HYPERPARAMS[name]


# The extra update arguments (``optim.info(name).extra_args``: value, grad, value_fn for
# L-BFGS and Newton) of the optimizer under test, set from each test's `name` parameter.
_EXTRA_ARGS: list[str] = []


@pytest.fixture(autouse=True)
def _declared_extra_args(request):
  callspec = getattr(request.node, "callspec", None)
  name = callspec.params.get("name") if callspec else None
  _EXTRA_ARGS[:] = optim.info(name).extra_args if name else ()


def extra_update_args(params):
  """The extra update arguments the optimizer under test declares, for `loss` at `params`."""
  if not _EXTRA_ARGS:
    return {}
  value, grad = jax.value_and_grad(loss)(params)
  available = {"value": value, "grad": grad, "value_fn": loss}
  return {arg: available[arg] for arg in _EXTRA_ARGS}


def make_step(tx):
  def step(params, state):
    grads = jax.grad(loss)(params)
    updates, state = tx.update(grads, state, params, **extra_update_args(params))
    return optax.apply_updates(params, updates), state

  return step


# The test programs are tiny: XLA's backend optimizations cost more compile time than they
# save at run time. The programs compiled for one test only (convergence, bfloat16 dtypes, vmap,
# chaining) use this; the shared float32 steps (jit versus eager among them) use the defaults.
_fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# Each optimizer is built once per (name, inject) and its jitted step is compiled once per input
# signature, shared by every test in this module (one compilation instead of one per test).
# `_TRACES` counts the traces of each shared step per parameter dtype, so that a retrace, in
# this test or an earlier one, is still caught by `test_second_step_does_not_recompile`.
_TRACES: collections.Counter = collections.Counter()


def optimizer(name, inject=False):
  return _optimizer(name, bool(inject))  # one cache key however `inject` is passed


def jitted_step(name, inject=False, *, fast=False):
  return _jitted_step(name, bool(inject), bool(fast))


@functools.cache
def _optimizer(name, inject):
  return optim.get(name, inject=inject, **hyperparams(name))


@functools.cache
def _jitted_step(name, inject, fast):
  step = make_step(optimizer(name, inject))

  def counted_step(params, state):
    dtypes = tuple(sorted({str(leaf.dtype) for leaf in jax.tree.leaves(params)}))
    _TRACES[name, inject, fast, dtypes] += 1  # runs only while tracing
    return step(params, state)

  return (_fast_jit if fast else jax.jit)(counted_step)


def run(tx, steps, *, jit=True, params=None, step=None):
  params = initial_params() if params is None else params
  state = tx.init(params)
  if step is None:
    step = jax.jit(make_step(tx)) if jit else make_step(tx)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state


# Line-search L-BFGS compiles slowly (10–25 s per check on 2 cores): its dtype, vmap and
# checkpoint checks run with `-m slow`; its other checks run by default.
SLOW_TO_COMPILE = {"lbfgs"}
HEAVY_SLOW = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_COMPILE else n
              for n in OPTLAB_OPTIMIZERS]


def test_every_optlab_optimizer_has_conformance_settings():
  assert set(CONFORMANCE_HYPERPARAMS) == set(OPTLAB_OPTIMIZERS)


@pytest.mark.parametrize("name", OPTLAB_OPTIMIZERS)
def test_converges_on_a_quadratic(name):
  tx = optim.get(name, **hyperparams(name))
  initial_loss = float(loss(initial_params()))

  def body(carry, _):
    return make_step(tx)(*carry), None

  @_fast_jit
  def train(params):
    return jax.lax.scan(body, (params, tx.init(params)), None, length=STEPS)[0][0]

  params = train(initial_params())
  assert float(loss(params)) < 1e-3 * initial_loss, name


@pytest.mark.parametrize("name", OPTLAB_OPTIMIZERS)
def test_jit_and_eager_agree(name):
  tx = optimizer(name)
  eager, _ = run(tx, 10, jit=False)
  compiled, _ = run(tx, 10, step=jitted_step(name))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), eager, compiled)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("inject", [False, True], ids=["plain", "injected"])
@pytest.mark.parametrize("name", HEAVY_SLOW)
def test_keeps_parameter_dtype(name, dtype, inject):
  tx = optimizer(name, inject)
  params = initial_params(dtype)
  state = tx.init(params)
  initial_state_dtypes = jax.tree.map(lambda x: jnp.asarray(x).dtype, state)
  step = jitted_step(name, inject, fast=dtype == jnp.bfloat16)  # float32: shared, default
  for _ in range(3):
    params, state = step(params, state)
  for leaf in jax.tree.leaves(params):
    assert leaf.dtype == dtype
    assert bool(jnp.all(jnp.isfinite(leaf.astype(jnp.float32))))
  assert jax.tree.map(lambda x: jnp.asarray(x).dtype, state) == initial_state_dtypes
  updates = jax.eval_shape(
      lambda p, s: tx.update(jax.grad(loss)(p), s, p, **extra_update_args(p))[0], params, state)
  assert all(u.dtype == dtype for u in jax.tree.leaves(updates))


@pytest.mark.parametrize("name", OPTLAB_OPTIMIZERS)
def test_second_step_does_not_recompile(name):
  tx = optimizer(name)
  step = jitted_step(name)  # shared: traces by earlier tests count too
  params = initial_params()
  state = tx.init(params)
  for _ in range(3):
    params, state = step(params, state)
  assert _TRACES[name, False, False, ("float32",)] == 1


@pytest.mark.parametrize("name", OPTLAB_OPTIMIZERS)
def test_state_keeps_its_tree_structure(name):
  tx = optim.get(name, **hyperparams(name))
  params = initial_params()
  state = tx.init(params)
  _, new_state = make_step(tx)(params, state)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  jax.tree.map(lambda a, b: np.testing.assert_equal(np.shape(a), np.shape(b)), state, new_state)


@pytest.mark.parametrize("name", HEAVY_SLOW)
def test_vmap_over_injected_learning_rates(name):
  base = hyperparams(name)
  rates = jnp.array([0.5, 1.0, 2.0]) * base["learning_rate"]
  tx = optim.get(name, inject=True, **base)
  steps = 8

  def train(learning_rate):
    params = initial_params()
    state = tx.init(params)
    state.hyperparams["learning_rate"] = learning_rate

    def body(carry, _):
      return make_step(tx)(*carry), None

    (params, _), _ = jax.lax.scan(body, (params, state), None, length=steps)
    return params

  batched = _fast_jit(jax.vmap(train))(rates)
  alone = _fast_jit(train)  # one run at a time: one compilation for the three rates
  fixed, _ = run(optimizer(name), steps, step=jitted_step(name))  # = a fixed rate
  jax.tree.map(lambda a, f: np.testing.assert_allclose(a, f, rtol=2e-4, atol=1e-5),
               alone(rates[1]), fixed)
  for i, rate in enumerate(rates):
    expected = alone(rate)
    jax.tree.map(
        lambda b, e, i=i: np.testing.assert_allclose(b[i], e, rtol=2e-4, atol=1e-5),
        batched,
        expected,
    )


@pytest.mark.parametrize("name", OPTLAB_OPTIMIZERS)
def test_injected_hyperparameters_can_change_between_steps(name):
  tx = optimizer(name, inject=True)
  params = initial_params()
  state = tx.init(params)
  state.hyperparams["learning_rate"] = jnp.asarray(0.0, jnp.float32)
  new_params, _ = jitted_step(name, inject=True)(params, state)
  jax.tree.map(np.testing.assert_array_equal, new_params, params)


@pytest.mark.parametrize("name", OPTLAB_OPTIMIZERS)
def test_composes_with_optax_chain(name):
  tx = optax.chain(optax.clip_by_global_norm(1.0), optim.get(name, **hyperparams(name)))
  params, _ = run(tx, 5, step=_fast_jit(make_step(tx)))
  assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize("name", OPTLAB_OPTIMIZERS)
def test_mismatched_trees_raise_a_clear_error(name):
  tx = optim.get(name, **hyperparams(name))
  params = initial_params()
  state = tx.init(params)
  wrong = {"w": jnp.zeros(6)}
  with pytest.raises(ValueError, match="tree structure"):
    tx.update(wrong, state, params)


@pytest.mark.parametrize("name", HEAVY_SLOW)
def test_state_survives_a_checkpoint_round_trip(name, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  tx = optimizer(name, inject=True)
  step = jitted_step(name, inject=True)
  params = initial_params()
  state = tx.init(params)
  for _ in range(3):
    params, state = step(params, state)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(tmp_path / "ckpt", {"params": params, "state": state})
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "ckpt", {"params": params, "state": state})
  restored_params, restored_state = restored["params"], restored["state"]
  assert jax.tree.structure(restored_state) == jax.tree.structure(state)
  for _ in range(3):
    params, state = step(params, state)
    restored_params, restored_state = step(restored_params, restored_state)
  jax.tree.map(np.testing.assert_array_equal, params, restored_params)
