"""Configuration of the edge_of_stability study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # Training images drawn at random from Fashion-MNIST's official training set (the paper:
  # a 5k subset of CIFAR-10). Full-batch GD touches every image every step, so a thousand
  # keeps thousands of steps within seconds; the task stays hard enough that the loss is
  # still falling (and the network still sharpening) after them.
  train_size: int = 1_000
  # 2×2 average pooling (28×28 -> 14×14 = 196 inputs): the first layer dominates the
  # cost of a step, and pooling quarters it without changing the task much.
  pool: int = 2
  # A fully connected tanh network with MSE on one-hot targets, the paper's Fig. 1 setup
  # (there wider, on CIFAR-10). Narrow layers sharpen more (Cohen et al. §3), so 2 × 16
  # reaches 2/η within a few hundred steps for the step sizes below.
  hidden_sizes: tuple[int, ...] = (16, 16)
  activation: str = "tanh"
  # Step sizes η: 2/η = 20, 16.7, 14.3, all above the initial sharpness (12.2, which
  # falls to ~10.5 in the first steps), so every run sharpens progressively before it
  # reaches 2/η (pilot runs: at steps ~1220, ~540 and ~280). At η ≥ 0.17 (2/η < 12.2)
  # GD starts out beyond the edge.
  step_sizes: tuple[float, ...] = (0.1, 0.12, 0.14)
  # Full-batch GD steps: the slowest η reaches 2/η after ~1200 and then hovers.
  steps: int = 1_600
  # Sharpness (top Hessian eigenvalue) every this many steps (the paper: every few
  # dozen to 100 steps): 75 measurements over the quick run.
  sharpness_every: int = 20
  # Lanczos steps per measurement (``top_eigenvalues(method="lanczos")``, as the paper's
  # code does with scipy's eigsh), each from a fresh random start. At the edge of
  # stability the top two eigenvalues nearly coincide (pilot, η = 0.2: 10.44 and 10.00),
  # which stalls warm-started power iteration (5 products: 2% low, 20: 0.6% low);
  # 20 Lanczos steps match the dense Hessian's eigenvalue to 1e-6.
  lanczos_iterations: int = 20
  # "Hovers at 2/η": the fraction of measurements after the first crossing that lie
  # within ±10% of 2/η (Cohen et al. say "at, or just above" 2/η).
  band: float = 0.1
  # Seeds change the initial weights (PyTorch's default nn.Linear init, as in the
  # paper's code); every η starts from the same weights, as in the paper.
  num_seeds: int = 1
  # The image subset is fixed by data_seed.
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# Three step sizes × 1,500 steps, one compiled program (η is an argument).
QUICK = Config(name="quick")

# Five step sizes, among them η = 0.06 (2/η = 33), which the network may not reach in
# this budget (the stable regime, for contrast); longer runs, sharpness every 10 steps,
# two initializations.
FULL = Config(name="full", step_sizes=(0.06, 0.08, 0.1, 0.12, 0.14), steps=6_000,
              sharpness_every=10, num_seeds=2)

CONFIGS = {"quick": QUICK, "full": FULL}
