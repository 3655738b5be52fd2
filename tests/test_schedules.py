"""Tests of optlab.optim.schedules: values by hand, formulas written out, jit/vmap, names."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optim import schedules as S

# ---------------------------------------------------------------------------------------------
# Warmup-stable-decay.
# peak 1.0, init 0.2, end 0.1, total 100, warmup 10, decay 40: the decay runs over steps
# 60..100 and x = (t − 60) / 40; step 70 is x = 1/4, step 80 is x = 1/2, step 99 is x = 39/40.

WSD = dict(peak_value=1.0, total_steps=100, warmup_steps=10, decay_steps=40, init_value=0.2,
           end_value=0.1)

# Shared by every shape: warmup start and middle, its end (the peak), the plateau, the start of
# the decay, the end and after it.
_COMMON = [(0, 0.2), (5, 0.6), (10, 1.0), (35, 1.0), (59, 1.0), (60, 1.0), (100, 0.1),
           (101, 0.1), (10_000, 0.1)]
# Per shape: (step, value) inside the decay, value = 0.1 + 0.9 · w(x).
_DECAY = {
    "linear": [(70, 0.1 + 0.9 * 0.75), (80, 0.1 + 0.9 * 0.5), (99, 0.1 + 0.9 / 40)],
    # w = (1 + cos πx) / 2: cos(π/4) = 0.70710678, cos(π/2) = 0.
    "cosine": [(70, 0.1 + 0.9 * 0.85355339), (80, 0.1 + 0.9 * 0.5)],
    # w = 1 − √x: √(1/4) = 0.5, √(1/2) = 0.70710678.
    "1-sqrt": [(70, 0.1 + 0.9 * 0.5), (80, 0.1 + 0.9 * 0.29289322)],
    # w = 1 − x²: 1 − 1/16, 1 − 1/4.
    "1-square": [(70, 0.1 + 0.9 * 0.9375), (80, 0.1 + 0.9 * 0.75)],
    # value = peak · (end / peak)^x = 0.1^x: 0.1^(1/4) = 0.56234133, 0.1^(1/2) = 0.31622777.
    "exponential": [(70, 0.56234133), (80, 0.31622777)],
}
_WSD_CASES = [(shape, t, want) for shape in _DECAY for t, want in _COMMON + _DECAY[shape]]


@pytest.mark.parametrize(("shape", "step", "expected"), _WSD_CASES)
def test_wsd_values_by_hand(shape, step, expected):
  schedule = S.warmup_stable_decay_schedule(**WSD, decay_shape=shape)
  np.testing.assert_allclose(schedule(step), expected, rtol=1e-6)


def test_wsd_default_decay_is_a_fifth_of_total_with_1_sqrt_shape():
  schedule = S.warmup_stable_decay_schedule(2.0, total_steps=1000, warmup_steps=100)
  # Warmup from 0 over 100 steps; decay over the last round(0.2 · 1000) = 200 steps, 1 − √x.
  expected = {0: 0.0, 50: 1.0, 100: 2.0, 799: 2.0, 800: 2.0, 850: 2.0 * (1 - 0.5),
              1000: 0.0, 1234: 0.0}
  for step, value in expected.items():
    np.testing.assert_allclose(schedule(step), value, rtol=1e-6, atol=1e-7)


def test_wsd_decay_fraction_and_edge_lengths():
  schedule = S.warmup_stable_decay_schedule(1.0, 10, decay_fraction=0.5, decay_shape="linear")
  # No warmup: the peak from step 0; decay over steps 5..10.
  np.testing.assert_allclose([schedule(t) for t in (0, 4, 5, 6, 10)], [1, 1, 1, 0.8, 0],
                             rtol=1e-6, atol=1e-7)
  no_decay = S.warmup_stable_decay_schedule(1.0, 10, decay_steps=0, end_value=0.5)
  np.testing.assert_allclose([no_decay(t) for t in (0, 9, 10, 11)], [1, 1, 0.5, 0.5])
  all_warmup = S.warmup_stable_decay_schedule(1.0, 4, warmup_steps=4, decay_steps=0)
  np.testing.assert_allclose([all_warmup(t) for t in (0, 1, 3, 4)], [0, 0.25, 0.75, 0])
  # A negative step reads as step 0.
  np.testing.assert_allclose(S.warmup_stable_decay_schedule(**WSD)(-5), 0.2)


# ---------------------------------------------------------------------------------------------
# Cyclical: Smith (2017) and torch.optim.lr_scheduler.CyclicLR, written out.


def smith_clr(t, base, top, s, mode, gamma):
  """Smith (2017), Sec. 3.1, with the scale functions of CyclicLR."""
  cycle = math.floor(1 + t / (2 * s))
  x = abs(t / s - 2 * cycle + 1)
  scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": gamma**t}[mode]
  return base + (top - base) * max(0.0, 1 - x) * scale


def torch_clr(t, base, top, up, down, mode, gamma):
  """CyclicLR.get_lr (PyTorch 2.x) after t calls of step(), with last_epoch = t."""
  total_size = up + down
  step_ratio = up / total_size
  cycle = math.floor(1 + t / total_size)
  x = 1.0 + t / total_size - cycle
  scale_factor = x / step_ratio if x <= step_ratio else (x - 1) / (step_ratio - 1)
  base_height = (top - base) * scale_factor
  scale = {"triangular": 1.0, "triangular2": 1 / 2.0 ** (cycle - 1), "exp_range": gamma**t}[mode]
  return base + base_height * scale


@pytest.mark.parametrize("mode", S.CYCLICAL_MODES)
def test_cyclical_matches_smith_formula(mode):
  schedule = S.cyclical_schedule(0.01, 0.1, step_size=7, mode=mode, gamma=0.99)
  steps = range(0, 60)
  expected = [smith_clr(t, 0.01, 0.1, 7, mode, 0.99) for t in steps]
  np.testing.assert_allclose([schedule(t) for t in steps], expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", S.CYCLICAL_MODES)
def test_cyclical_asymmetric_matches_torch_cycliclr(mode):
  schedule = S.cyclical_schedule(0.2, 1.0, step_size=3, step_size_down=5, mode=mode,
                                 gamma=0.95)
  steps = range(0, 40)
  expected = [torch_clr(t, 0.2, 1.0, 3, 5, mode, 0.95) for t in steps]
  np.testing.assert_allclose([schedule(t) for t in steps], expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("mode", "step", "expected"),
    [
        ("triangular", 0, 0.1), ("triangular", 2, 0.3), ("triangular", 4, 0.5),
        ("triangular", 6, 0.3), ("triangular", 8, 0.1), ("triangular", 12, 0.5),
        # Period 8: step 2_000_003 is 3 steps into a cycle, 0.1 + 0.4 · 3/4; no drift.
        ("triangular", 2_000_003, 0.4),
        ("triangular2", 4, 0.5), ("triangular2", 12, 0.3), ("triangular2", 20, 0.2),
        ("exp_range", 4, 0.1 + 0.4 * 0.9**4), ("exp_range", 12, 0.1 + 0.4 * 0.9**12),
    ],
)
def test_cyclical_values_by_hand(mode, step, expected):
  schedule = S.cyclical_schedule(0.1, 0.5, step_size=4, mode=mode, gamma=0.9)
  np.testing.assert_allclose(schedule(step), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Inverse square root.


@pytest.mark.parametrize("alpha", [1.0, 0.3, 1e-3])
def test_inverse_sqrt_is_alpha_over_sqrt_t(alpha):
  schedule = S.inverse_sqrt_schedule(alpha)
  # Hand values, t = step + 1: step 0 → α, step 3 → α/2, step 8 → α/3, step 99 → α/10.
  for step, root in [(0, 1), (3, 2), (8, 3), (15, 4), (99, 10)]:
    assert schedule(step) == np.float32(alpha) / np.float32(root)
  steps = np.arange(0, 5000)
  # Bit for bit the float32 value of α / √t ...
  t = (steps + 1).astype(np.float32)
  np.testing.assert_array_equal(jax.vmap(schedule)(steps), np.float32(alpha) / np.sqrt(t))
  # ... which is within an ulp of the exact one.
  exact = alpha / np.sqrt(steps + 1.0)
  np.testing.assert_allclose(jax.vmap(schedule)(steps), exact, rtol=2e-7)


def test_inverse_sqrt_offset_and_warmup():
  np.testing.assert_allclose(S.inverse_sqrt_schedule(2.0, offset=4)(0), 1.0)  # 2 / √4
  schedule = S.inverse_sqrt_schedule(1.0, warmup_steps=3)  # t = step + 1, t_w = 4
  # min(1/√t, t / 4^1.5 = t / 8): 1/8, 2/8, 3/8, then 1/√4, 1/√9.
  np.testing.assert_allclose([schedule(s) for s in (0, 1, 2, 3, 8)],
                             [0.125, 0.25, 0.375, 0.5, 1 / 3], rtol=1e-6)


def test_inverse_sqrt_is_the_transformer_schedule_with_offset_zero():
  d_model, warmup = 512, 4000
  schedule = S.inverse_sqrt_schedule(d_model**-0.5, warmup_steps=warmup, offset=0)
  for n in (1, 100, 3999, 4000, 4001, 100_000):  # Vaswani et al. (2017), Eq. 3
    expected = d_model**-0.5 * min(n**-0.5, n * warmup**-1.5)
    np.testing.assert_allclose(schedule(n), expected, rtol=1e-6)
  assert schedule(0) == 0.0


# ---------------------------------------------------------------------------------------------
# Shared behaviour: jit, vmap, dtypes.

OPTLAB_SCHEDULES = {
    "wsd_1_sqrt": lambda: S.warmup_stable_decay_schedule(**WSD),
    "wsd_cosine": lambda: S.warmup_stable_decay_schedule(**WSD, decay_shape="cosine"),
    "wsd_exponential": lambda: S.warmup_stable_decay_schedule(**WSD, decay_shape="exponential"),
    "triangular": lambda: S.cyclical_schedule(0.1, 1.0, 6),
    "triangular2": lambda: S.cyclical_schedule(0.1, 1.0, 6, mode="triangular2"),
    "exp_range": lambda: S.cyclical_schedule(0.1, 1.0, 6, mode="exp_range", gamma=0.98),
    "inverse_sqrt": lambda: S.inverse_sqrt_schedule(0.5),
    "inverse_sqrt_warmup": lambda: S.inverse_sqrt_schedule(0.5, warmup_steps=20),
}


@pytest.mark.parametrize("name", OPTLAB_SCHEDULES)
def test_jit_and_vmap_match_eager(name):
  schedule = OPTLAB_SCHEDULES[name]()
  steps = jnp.arange(0, 130, dtype=jnp.int32)
  eager = np.asarray([schedule(int(t)) for t in steps])
  for transformed in (jax.jit(schedule), jax.vmap(schedule), jax.jit(jax.vmap(schedule)),
                      schedule):  # the last: one eager call on the whole array
    values = transformed(steps)
    assert values.dtype == jnp.float32 and values.shape == (130,)
    np.testing.assert_allclose(values, eager, rtol=1e-6, atol=1e-7)  # a few ulps


@pytest.mark.parametrize("name", OPTLAB_SCHEDULES)
@pytest.mark.parametrize("step", [7, np.int64(7), jnp.int32(7), jnp.asarray(7, jnp.uint32)])
def test_float32_scalar_for_any_integer_step(name, step):
  value = OPTLAB_SCHEDULES[name]()(step)
  assert value.dtype == jnp.float32 and value.shape == ()
  assert value == OPTLAB_SCHEDULES[name]()(7)


@pytest.mark.parametrize("name", OPTLAB_SCHEDULES)
def test_optax_learning_rate(name):
  schedule = OPTLAB_SCHEDULES[name]()
  optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  state = optimizer.init(params)

  @jax.jit
  def step(params, state):
    grads = params  # the gradient of |w|² / 2
    updates, state = optimizer.update(grads, state, params)
    return optax.apply_updates(params, updates), state, updates

  for count in range(5):
    before = params
    params, state, updates = step(params, state)
    np.testing.assert_allclose(updates["w"], -schedule(count) * before["w"], rtol=1e-6)
  # inject_hyperparams keeps the value used by the last update (count 4).
  np.testing.assert_allclose(state.hyperparams["learning_rate"], schedule(4), rtol=1e-6)
  # And plainly, as optax.sgd's learning rate.
  sgd = optax.sgd(schedule)
  updates, _ = sgd.update(params, sgd.init(params), params)
  assert bool(jnp.all(jnp.isfinite(updates["w"])))


# ---------------------------------------------------------------------------------------------
# Names.

EXAMPLE_KWARGS = {
    "constant": dict(value=0.1),
    "linear": dict(init_value=1.0, end_value=0.0, transition_steps=50),
    "polynomial": dict(init_value=1.0, end_value=0.01, power=2.0, transition_steps=80),
    "cosine_decay": dict(init_value=1.0, decay_steps=80, alpha=0.1),
    "exponential_decay": dict(init_value=1.0, transition_steps=10, decay_rate=0.5),
    "piecewise_constant": dict(init_value=1.0, boundaries_and_scales={30: 0.1, 60: 0.1}),
    "piecewise_interpolate": dict(interpolate_type="cosine", init_value=1.0,
                                  boundaries_and_scales={30: 0.1, 60: 0.1}),
    "cosine_onecycle": dict(transition_steps=100, peak_value=1.0),
    "linear_onecycle": dict(transition_steps=100, peak_value=1.0),
    "warmup_constant": dict(init_value=0.0, peak_value=1.0, warmup_steps=10),
    "warmup_cosine_decay": dict(init_value=0.0, peak_value=1.0, warmup_steps=10,
                                decay_steps=100),
    "warmup_exponential_decay": dict(init_value=0.0, peak_value=1.0, warmup_steps=10,
                                     transition_steps=10, decay_rate=0.5),
    "sgdr": dict(cosine_kwargs=[dict(init_value=0.0, peak_value=1.0, warmup_steps=5,
                                     decay_steps=50)] * 2),
    "join": dict(schedules=[optax.constant_schedule(1.0), optax.constant_schedule(0.1)],
                 boundaries=[50]),
    "wsd": dict(peak_value=1.0, total_steps=100, warmup_steps=10),
    "cyclical": dict(base_value=0.1, max_value=1.0, step_size=10),
    "inverse_sqrt": dict(init_value=1.0, warmup_steps=10),
}


def test_schedule_names_are_canonical_and_covered():
  names = S.schedule_names()
  assert names == sorted(names) and len(set(names)) == len(names)
  assert set(names) == set(EXAMPLE_KWARGS)
  assert {"wsd", "cyclical", "inverse_sqrt", "cosine_decay", "sgdr"} <= set(names)


@pytest.mark.parametrize("name", sorted(EXAMPLE_KWARGS))
def test_every_name_builds_and_is_finite(name):
  schedule = S.get_schedule(name, **EXAMPLE_KWARGS[name])
  values = np.asarray([schedule(t) for t in range(101)], dtype=np.float64)
  assert values.shape == (101,) and np.all(np.isfinite(values))
  np.testing.assert_allclose(jax.jit(schedule)(jnp.int32(37)), values[37], rtol=1e-6)


@pytest.mark.parametrize(
    ("alias", "factory"),
    [
        ("cosine_decay_schedule", optax.cosine_decay_schedule),
        ("warmup_cosine_decay_schedule", optax.warmup_cosine_decay_schedule),
        ("exponential_decay", optax.exponential_decay),
        ("join_schedules", optax.join_schedules),
        ("sgdr_schedule", optax.sgdr_schedule),
        ("warmup_stable_decay_schedule", S.warmup_stable_decay_schedule),
        ("WSD", S.warmup_stable_decay_schedule),
        ("cyclical_schedule", S.cyclical_schedule),
        ("inverse-sqrt", S.inverse_sqrt_schedule),
        ("inverse_sqrt_schedule", S.inverse_sqrt_schedule),
    ],
)
def test_full_names_resolve(alias, factory):
  canonical = S._ALIASES[alias.lower().replace("-", "_")]
  assert S._REGISTRY[canonical][0] is factory
  np.testing.assert_allclose(S.get_schedule(alias, **EXAMPLE_KWARGS[canonical])(13),
                             factory(**EXAMPLE_KWARGS[canonical])(13))


def test_get_schedule_values_match_direct_construction():
  direct = S.cyclical_schedule(0.1, 1.0, 10)
  named = S.get_schedule("cyclical", **EXAMPLE_KWARGS["cyclical"])
  np.testing.assert_array_equal(jax.vmap(named)(jnp.arange(50)), jax.vmap(direct)(jnp.arange(50)))


@pytest.mark.parametrize(("typo", "suggestion"),
                         [("cosin_decay", "'cosine_decay'"), ("warmup_cosine", "warmup_cosine"),
                          ("inverse_sqr", "'inverse_sqrt'"), ("cyclic_lr", "'cyclical'")])
def test_unknown_name_suggests_close_matches(typo, suggestion):
  with pytest.raises(ValueError, match=f"unknown schedule '{typo}'.*Did you mean.*{suggestion}"):
    S.get_schedule(typo, init_value=1.0)


def test_unknown_name_without_close_match_lists_the_names():
  with pytest.raises(ValueError, match=r"Known schedules: .*inverse_sqrt.*wsd") as info:
    S.get_schedule("zzzzzz")
  assert "Did you mean" not in str(info.value)


def test_wrong_kwargs_name_the_schedule_and_its_arguments():
  with pytest.raises(TypeError, match=r"'cosine_decay'.*decay_step\b.*accepts: init_value, "
                                      r"decay_steps, alpha=0.0, exponent=1.0"):
    S.get_schedule("cosine_decay", init_value=1.0, decay_step=10)
  with pytest.raises(TypeError, match=r"'wsd'.*missing required argument.*total_steps"):
    S.get_schedule("wsd", peak_value=1.0)
  with pytest.raises(TypeError, match="name must be a string"):
    S.get_schedule(optax.constant_schedule)


# ---------------------------------------------------------------------------------------------
# Validation at construction.

_nan, _inf = float("nan"), float("inf")
_WSD_ARGS = dict(peak_value=1.0, total_steps=100)
_CLR_ARGS = dict(base_value=0.1, max_value=1.0, step_size=10)


@pytest.mark.parametrize(
    ("factory", "kwargs", "argument"),
    [
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, peak_value=-1.0), "peak_value"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, peak_value=_nan), "peak_value"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, peak_value=_inf), "peak_value"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, init_value=-0.1), "init_value"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, end_value=-0.1), "end_value"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, total_steps=0), "total_steps"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, warmup_steps=-1), "warmup_steps"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, warmup_steps=101), "warmup_steps"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, decay_steps=-1), "decay_steps"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, warmup_steps=60, decay_steps=50),
         "warmup_steps \\+ decay_steps"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, warmup_steps=90), "decay_fraction"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, decay_fraction=1.5), "decay_fraction"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, decay_shape="quadratic"),
         "decay_shape"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, decay_shape="exponential"),
         "end_value"),
        (S.cyclical_schedule, dict(_CLR_ARGS, base_value=-0.1), "base_value"),
        (S.cyclical_schedule, dict(_CLR_ARGS, max_value=_inf), "max_value"),
        (S.cyclical_schedule, dict(_CLR_ARGS, step_size=0), "step_size"),
        (S.cyclical_schedule, dict(_CLR_ARGS, step_size=-4), "step_size"),
        (S.cyclical_schedule, dict(_CLR_ARGS, step_size_down=0), "step_size_down"),
        (S.cyclical_schedule, dict(_CLR_ARGS, mode="sine"), "mode"),
        (S.cyclical_schedule, dict(_CLR_ARGS, gamma=0.0), "gamma"),
        (S.cyclical_schedule, dict(_CLR_ARGS, gamma=1.5), "gamma"),
        (S.cyclical_schedule, dict(_CLR_ARGS, gamma=_nan), "gamma"),
        (S.inverse_sqrt_schedule, dict(init_value=-1.0), "init_value"),
        (S.inverse_sqrt_schedule, dict(init_value=_nan), "init_value"),
        (S.inverse_sqrt_schedule, dict(init_value=1.0, warmup_steps=-1), "warmup_steps"),
        (S.inverse_sqrt_schedule, dict(init_value=1.0, offset=-1), "offset"),
        (S.inverse_sqrt_schedule, dict(init_value=1.0, offset=0), "offset"),
    ],
)
def test_invalid_arguments_raise_value_error(factory, kwargs, argument):
  with pytest.raises(ValueError, match=argument):
    factory(**kwargs)


@pytest.mark.parametrize(
    ("factory", "kwargs", "argument"),
    [
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, total_steps=100.5), "total_steps"),
        (S.warmup_stable_decay_schedule, dict(_WSD_ARGS, warmup_steps=True), "warmup_steps"),
        (S.cyclical_schedule, dict(_CLR_ARGS, step_size=2.5), "step_size"),
        (S.inverse_sqrt_schedule, dict(init_value=1.0, warmup_steps="10"), "warmup_steps"),
    ],
)
def test_non_integer_step_counts_raise_type_error(factory, kwargs, argument):
  with pytest.raises(TypeError, match=argument):
    factory(**kwargs)
