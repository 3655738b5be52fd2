"""Each classic optimizer against its paper's update rule, written out by hand.

The references below are plain NumPy loops in float64, one line per line of the
paper's algorithm; optlab runs in float32 on the same fixed gradient sequence,
eagerly and under `jax.jit`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim

STEPS = 8
RNG = np.random.default_rng(1234)
GRADIENTS = RNG.normal(size=(STEPS, 5))
GRADIENTS[3, 2] = 0.0  # a zero gradient component exercises the ε terms
THETA0 = RNG.normal(size=5)


def run_optlab(tx, *, jit, gradient_fn=None):
  """Applies `tx` for STEPS steps; gradients are fixed unless `gradient_fn(θ, t)` is given."""
  params = jnp.asarray(THETA0, jnp.float32)
  state = tx.init(params)

  def step(params, state, gradient):
    updates, state = tx.update(gradient, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  trajectory = []
  for t in range(STEPS):
    if gradient_fn is None:
      gradient = jnp.asarray(GRADIENTS[t], jnp.float32)
    else:
      gradient = jnp.asarray(gradient_fn(np.asarray(params, np.float64), t), jnp.float32)
    params, state = step(params, state, gradient)
    trajectory.append(np.asarray(params, np.float64))
  return np.stack(trajectory)


def assert_matches(trajectory, reference, rtol=2e-5, atol=2e-6):
  np.testing.assert_allclose(trajectory, np.stack(reference), rtol=rtol, atol=atol)


jit_modes = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


def schedule(t):
  """A learning-rate schedule that changes at every step, to separate conventions."""
  return 0.1 / (1.0 + t)


@jit_modes
def test_gd(jit):
  alpha = 0.3
  theta, reference = THETA0.copy(), []
  for t in range(STEPS):
    theta = theta - alpha * GRADIENTS[t]
    reference.append(theta)
  assert_matches(run_optlab(optim.gd(alpha), jit=jit), reference)


@jit_modes
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_pytorch_convention(jit, nesterov):
  alpha, mu = 0.1, 0.9
  theta, buf, reference = THETA0.copy(), np.zeros(5), []
  for t in range(STEPS):
    g = GRADIENTS[t]
    buf = mu * buf + g  # torch.optim.SGD, dampening 0
    direction = g + mu * buf if nesterov else buf
    theta = theta - alpha * direction
    reference.append(theta)
  assert_matches(run_optlab(optim.sgd(alpha, mu, nesterov=nesterov), jit=jit), reference)


@jit_modes
def test_heavy_ball_polyak_with_schedule(jit):
  # θ_{t+1} = θ_t − α_t g_t + μ (θ_t − θ_{t−1})
  mu = 0.8
  theta, previous, reference = THETA0.copy(), THETA0.copy(), []
  for t in range(STEPS):
    theta, previous = theta - schedule(t) * GRADIENTS[t] + mu * (theta - previous), theta
    reference.append(theta)
  tx = optim.heavy_ball(schedule, momentum=mu)
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
def test_heavy_ball_pytorch_form_differs_under_a_schedule(jit):
  mu = 0.8
  theta, buf, reference = THETA0.copy(), np.zeros(5), []
  for t in range(STEPS):
    buf = mu * buf + GRADIENTS[t]
    theta = theta - schedule(t) * buf
    reference.append(theta)
  pytorch = run_optlab(optim.heavy_ball(schedule, mu, velocity_form="pytorch"), jit=jit)
  assert_matches(pytorch, reference)
  paper = run_optlab(optim.heavy_ball(schedule, mu), jit=jit)
  assert np.max(np.abs(paper - pytorch)) > 1e-3
  # Under a constant learning rate both forms give the same iterates.
  np.testing.assert_allclose(
      run_optlab(optim.heavy_ball(0.1, mu), jit=jit),
      run_optlab(optim.heavy_ball(0.1, mu, velocity_form="pytorch"), jit=jit),
      rtol=1e-5, atol=1e-6,
  )


def quadratic_gradient(theta, t):
  del t
  return np.arange(1.0, 6.0) * theta  # ∇ of ½ Σ_i i θ_i²


@jit_modes
def test_nesterov_sutskever_form(jit):
  # Sutskever et al. (2013), eqs. (3)-(4), with the gradient at the look-ahead point:
  #   v_{t+1} = μ v_t − α_t ∇f(θ_t + μ v_t),   θ_{t+1} = θ_t + v_{t+1}.
  # optlab keeps φ_t = θ_t + μ v_t as the parameters.
  mu = 0.7
  theta, velocity, reference = THETA0.copy(), np.zeros(5), []
  for t in range(STEPS):
    velocity = mu * velocity - schedule(t) * quadratic_gradient(theta + mu * velocity, t)
    theta = theta + velocity
    reference.append(theta + mu * velocity)
  tx = optim.nesterov(schedule, momentum=mu)
  trajectory = run_optlab(tx, jit=jit, gradient_fn=quadratic_gradient)
  assert_matches(trajectory, reference)


def test_nesterov_iterate_recovers_theta():
  mu, alpha = 0.7, 0.05
  theta, velocity = THETA0.copy(), np.zeros(5)
  tx = optim.nesterov(alpha, momentum=mu)
  params = jnp.asarray(THETA0, jnp.float32)
  state = tx.init(params)
  for t in range(STEPS):
    velocity = mu * velocity - alpha * quadratic_gradient(theta + mu * velocity, t)
    theta = theta + velocity
    gradient = jnp.asarray(quadratic_gradient(np.asarray(params, np.float64), t), jnp.float32)
    updates, state = tx.update(gradient, state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(optim.nesterov_iterate(params, state, mu), theta, rtol=1e-5)


@jit_modes
def test_nesterov_original_1983_form(jit):
  # Nesterov (1983), constant momentum:  y_k = x_k + β (x_k − x_{k−1}),  x_{k+1} = y_k − α ∇f(y_k).
  # The gradient is taken at y, so optlab's parameters are the y_k.
  alpha, beta = 0.05, 0.7
  x, x_previous, reference = THETA0.copy(), THETA0.copy(), []
  for t in range(STEPS):
    y = x + beta * (x - x_previous)
    x, x_previous = y - alpha * quadratic_gradient(y, t), x
    reference.append(x + beta * (x - x_previous))
  trajectory = run_optlab(optim.nesterov(alpha, beta), jit=jit, gradient_fn=quadratic_gradient)
  assert_matches(trajectory, reference)


@jit_modes
def test_nesterov_pytorch_form(jit):
  mu = 0.7
  theta, buf, reference = THETA0.copy(), np.zeros(5), []
  for t in range(STEPS):
    g = GRADIENTS[t]
    buf = mu * buf + g
    theta = theta - schedule(t) * (g + mu * buf)
    reference.append(theta)
  tx = optim.nesterov(schedule, mu, velocity_form="pytorch")
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
@pytest.mark.parametrize(
    "initial_accumulator_value, eps_in_sqrt", [(0.0, False), (0.1, True), (0.5, False)]
)
def test_adagrad(jit, initial_accumulator_value, eps_in_sqrt):
  alpha, eps = 0.5, 1e-7
  theta, accumulator, reference = THETA0.copy(), np.full(5, initial_accumulator_value), []
  for t in range(STEPS):
    g = GRADIENTS[t]
    accumulator = accumulator + g * g  # G_t = Σ g²
    denominator = np.sqrt(accumulator + eps) if eps_in_sqrt else np.sqrt(accumulator) + eps
    theta = theta - alpha * g / denominator
    reference.append(theta)
  tx = optim.adagrad(alpha, eps, initial_accumulator_value, eps_in_sqrt=eps_in_sqrt)
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("eps_in_sqrt", [False, True])
def test_rmsprop(jit, centered, momentum, eps_in_sqrt):
  alpha, rho, eps = 0.01, 0.9, 1e-6
  theta, nu, mean, buf, reference = THETA0.copy(), np.zeros(5), np.zeros(5), np.zeros(5), []
  for t in range(STEPS):
    g = GRADIENTS[t]
    nu = rho * nu + (1 - rho) * g * g
    mean = rho * mean + (1 - rho) * g
    scale = nu - mean * mean if centered else nu
    denominator = np.sqrt(scale + eps) if eps_in_sqrt else np.sqrt(scale) + eps
    buf = momentum * buf + g / denominator
    theta = theta - alpha * buf
    reference.append(theta)
  tx = optim.rmsprop(alpha, rho, eps, momentum, centered=centered, eps_in_sqrt=eps_in_sqrt)
  assert_matches(run_optlab(tx, jit=jit), reference, rtol=1e-4)


@jit_modes
def test_adadelta(jit):
  # Zeiler (2012), Algorithm 1.
  rho, eps = 0.95, 1e-6
  theta, eg2, edx2, reference = THETA0.copy(), np.zeros(5), np.zeros(5), []
  for t in range(STEPS):
    g = GRADIENTS[t]
    eg2 = rho * eg2 + (1 - rho) * g * g
    dx = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
    edx2 = rho * edx2 + (1 - rho) * dx * dx
    theta = theta + dx
    reference.append(theta)
  assert_matches(run_optlab(optim.adadelta(), jit=jit), reference)


def adam_reference(alpha, b1, b2, eps, weight_decay=0.0, multiplier=lambda t: 1.0, lr_form=False):
  theta, m, v, reference = THETA0.copy(), np.zeros(5), np.zeros(5), []
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    step = m_hat / (np.sqrt(v_hat) + eps)
    if lr_form:  # torch.optim.AdamW
      theta = theta - alpha * (step + weight_decay * theta)
    else:  # Loshchilov & Hutter, Algorithm 2, line 12
      eta = multiplier(t - 1)
      theta = theta - eta * (alpha * step + weight_decay * theta)
    reference.append(theta)
  return reference


@jit_modes
def test_adam(jit):
  # Kingma & Ba (2015), Algorithm 1.
  reference = adam_reference(0.01, 0.9, 0.999, 1e-8)
  assert_matches(run_optlab(optim.adam(0.01), jit=jit), reference)


@jit_modes
def test_adamw_paper_convention(jit):
  multiplier = lambda t: 1.0 - t / 20.0  # noqa: E731
  reference = adam_reference(0.01, 0.9, 0.999, 1e-8, weight_decay=0.05, multiplier=multiplier)
  tx = optim.adamw(0.01, weight_decay=0.05, schedule_multiplier=multiplier)
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
def test_adamw_lr_convention(jit):
  reference = adam_reference(0.01, 0.9, 0.999, 1e-8, weight_decay=0.05, lr_form=True)
  tx = optim.adamw(0.01, weight_decay=0.05, decay_convention="lr")
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
@pytest.mark.parametrize("bias_correction", ["none", "after_max", "before_max"])
def test_amsgrad(jit, bias_correction):
  alpha, b1, b2, eps = 0.01, 0.9, 0.99, 1e-8
  theta, m, v, v_max, reference = THETA0.copy(), np.zeros(5), np.zeros(5), np.zeros(5), []
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if bias_correction == "none":  # Reddi et al. (2018), Algorithm 2
      v_max = np.maximum(v_max, v)
      step = m / (np.sqrt(v_max) + eps)
    elif bias_correction == "after_max":  # torch.optim.Adam(amsgrad=True)
      v_max = np.maximum(v_max, v)
      step = (m / (1 - b1**t)) / (np.sqrt(v_max / (1 - b2**t)) + eps)
    else:  # optax.amsgrad
      v_max = np.maximum(v_max, v / (1 - b2**t))
      step = (m / (1 - b1**t)) / (np.sqrt(v_max) + eps)
    theta = theta - alpha * step
    reference.append(theta)
  tx = optim.amsgrad(alpha, b1, b2, eps, bias_correction=bias_correction)
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
@pytest.mark.parametrize("eps_inside_max", [False, True])
def test_adamax(jit, eps_inside_max):
  # Kingma & Ba (2015), Algorithm 2.
  alpha, b1, b2, eps = 0.002, 0.9, 0.999, 1e-8
  theta, m, u, reference = THETA0.copy(), np.zeros(5), np.zeros(5), []
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    m = b1 * m + (1 - b1) * g
    if eps_inside_max:
      u = np.maximum(b2 * u, np.abs(g) + eps)
      theta = theta - alpha / (1 - b1**t) * m / u
    else:
      u = np.maximum(b2 * u, np.abs(g))
      theta = theta - alpha / (1 - b1**t) * m / (u + eps)
    reference.append(theta)
  tx = optim.adamax(alpha, b1, b2, eps, eps_inside_max=eps_inside_max)
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
@pytest.mark.parametrize("momentum_decay", [0.004, 0.1, None])
def test_nadam(jit, momentum_decay):
  # Dozat (2016), Algorithm 2, with μ_t = β₁ (1 − ½ 0.96^{tψ}) (constant β₁ when ψ is None).
  alpha, b1, b2, eps = 0.002, 0.9, 0.999, 1e-8

  def mu(t):
    return b1 if momentum_decay is None else b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

  theta, m, n, product, reference = THETA0.copy(), np.zeros(5), np.zeros(5), 1.0, []
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    product *= mu(t)
    g_hat = g / (1 - product)
    m = b1 * m + (1 - b1) * g
    m_hat = m / (1 - product * mu(t + 1))
    n = b2 * n + (1 - b2) * g * g
    n_hat = n / (1 - b2**t)
    m_bar = (1 - mu(t)) * g_hat + mu(t + 1) * m_hat
    theta = theta - alpha * m_bar / (np.sqrt(n_hat) + eps)
    reference.append(theta)
  tx = optim.nadam(alpha, b1, b2, eps, momentum_decay)
  assert_matches(run_optlab(tx, jit=jit), reference)


@jit_modes
@pytest.mark.parametrize("threshold, b2", [(4.0, 0.9), (5.0, 0.9), (4.0, 0.999)])
def test_radam(jit, threshold, b2):
  # Liu et al. (2020), Algorithm 2. With β₂ = 0.9 the rectified branch starts within STEPS.
  alpha, b1, eps = 0.01, 0.9, 1e-8
  rho_inf = 2 / (1 - b2) - 1
  theta, m, v, reference, rectified = THETA0.copy(), np.zeros(5), np.zeros(5), [], 0
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat = m / (1 - b1**t)
    rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho_t > threshold:
      rectified += 1
      l_t = 1 / (np.sqrt(v / (1 - b2**t)) + eps)
      r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
      theta = theta - alpha * r_t * m_hat * l_t
    else:
      theta = theta - alpha * m_hat
    reference.append(theta)
  if b2 == 0.9:
    assert 0 < rectified < STEPS  # both branches are exercised
  tx = optim.radam(alpha, b1, b2, eps, threshold)
  assert_matches(run_optlab(tx, jit=jit), reference, rtol=1e-4)
