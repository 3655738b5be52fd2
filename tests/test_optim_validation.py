"""Invalid hyperparameters fail at construction with a message naming the argument."""

import math

import jax.numpy as jnp
import pytest

from optlab import optim

# (optimizer, keyword arguments, text the error must contain)
INVALID = [
    ("gd", {"learning_rate": -0.1}, r"gd: learning_rate must be in \[0, inf\], got -0.1"),
    ("sgd", {"learning_rate": math.nan}, "learning_rate must be a finite number"),
    ("sgd", {"learning_rate": math.inf}, "learning_rate must be a finite number"),
    ("sgd", {"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
    ("sgd", {"momentum": -0.5}, r"momentum must be in \[0, 1\)"),
    ("heavy_ball", {"momentum": 1.5}, "momentum"),
    ("heavy_ball", {"velocity_form": "torch"}, "velocity_form must be one of"),
    ("nesterov", {"momentum": 1.0}, "momentum"),
    ("nesterov", {"learning_rate": None}, "learning_rate is required"),
    ("adagrad", {"eps": -1e-8}, r"eps must be in \[0, inf\]"),
    ("adagrad", {"initial_accumulator_value": -0.1}, "initial_accumulator_value"),
    ("rmsprop", {"decay": 1.0}, "decay"),
    ("rmsprop", {"momentum": 1.0}, "momentum"),
    ("rmsprop", {"eps": -1.0}, "eps"),
    ("adadelta", {"rho": 1.2}, "rho"),
    ("adadelta", {"eps": -1e-6}, "eps"),
    ("adam", {"b1": 1.0}, r"b1 must be in \[0, 1\), got 1.0"),
    ("adam", {"b1": -0.1}, "b1"),
    ("adam", {"b2": 1.5}, "b2"),
    ("adam", {"eps": -1e-8}, "eps"),
    ("adam", {"eps_root": -1.0}, "eps_root"),
    ("adam", {"learning_rate": -1e-3}, "learning_rate"),
    ("adamw", {"weight_decay": -0.01}, "weight_decay"),
    ("adamw", {"decay_convention": "torch"}, "decay_convention must be one of"),
    ("amsgrad", {"bias_correction": "both"}, "bias_correction must be one of"),
    ("amsgrad", {"b2": 1.0}, "b2"),
    ("adamax", {"b1": 2.0}, "b1"),
    ("nadam", {"momentum_decay": -0.004}, "momentum_decay"),
    ("nadam", {"b2": -0.1}, "b2"),
    ("radam", {"threshold": 3.0}, "threshold"),
    ("radam", {"b1": 1.0}, "b1"),
]


@pytest.mark.parametrize(
    "name, kwargs, message", INVALID, ids=[f"{n}-{next(iter(k))}" for n, k, _ in INVALID]
)
def test_invalid_hyperparameter_raises_at_construction(name, kwargs, message):
  with pytest.raises(ValueError, match=message):
    optim.get(name, **kwargs)


INJECTABLE = [case for case in INVALID if isinstance(next(iter(case[1].values())), float)]


@pytest.mark.parametrize(
    "name, kwargs, message", INJECTABLE, ids=[f"{n}-{next(iter(k))}" for n, k, _ in INJECTABLE]
)
def test_invalid_hyperparameter_raises_when_injected(name, kwargs, message):
  # Injected hyperparameters are checked when the state is built from them.
  tx = optim.get(name, inject=True, **kwargs)
  with pytest.raises(ValueError, match=message):
    tx.init(jnp.zeros(3))


def test_error_names_the_optimizer_argument_value_and_range():
  with pytest.raises(ValueError) as error:
    optim.adam(b2=1.2)
  text = str(error.value)
  assert "b2" in text and "1.2" in text and "[0, 1)" in text


def test_valid_edge_values_are_accepted():
  optim.adam(learning_rate=0.0, b1=0.0, b2=0.0, eps=0.0)
  optim.sgd(0.1, momentum=0.0)
  optim.gd(lambda step: 0.1)  # a schedule
  optim.adamw(weight_decay=0.0)


def test_unknown_hyperparameter_suggests_the_closest():
  with pytest.raises(TypeError, match="did you mean 'learning_rate'"):
    optim.get("adam", learning_rat=1e-3)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.complex64])
def test_non_float_parameters_are_refused(dtype):
  with pytest.raises(TypeError, match="real floating-point"):
    optim.adam().init({"w": jnp.zeros(3, dtype)})


def test_schedule_multiplier_must_be_a_schedule():
  with pytest.raises(TypeError, match="schedule_multiplier must be a schedule"):
    optim.adamw(schedule_multiplier=0.5)


def test_bool_hyperparameter_where_a_number_is_expected():
  with pytest.raises(TypeError, match="b1"):
    optim.adam(b1=True)


def test_weight_decay_without_params_is_a_clear_error():
  tx = optim.adamw(weight_decay=0.1)
  params = jnp.ones(3)
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(jnp.ones(3), tx.init(params))


@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adadelta", "adam", "amsgrad", "adamax",
                                  "nadam", "radam"])
def test_zero_epsilon_and_zero_gradients_give_zero_updates_not_nan(name):
  tx = optim.get(name, eps=0.0)
  params = jnp.ones(3)
  state = tx.init(params)
  gradient = jnp.array([1.0, 0.0, -2.0])  # the middle coordinate never sees a gradient
  for _ in range(3):
    updates, state = tx.update(gradient, state, params)
    assert bool(jnp.all(jnp.isfinite(updates))), name
    assert float(updates[1]) == 0.0
