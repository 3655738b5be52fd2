"""Configuration of the lr_batch_sensitivity study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _decades(low: float, high: float, per_decade: int) -> tuple[float, ...]:
  """Log-spaced values from `low` to `high`, `per_decade` per decade (2 significant digits)."""
  n = round(per_decade * np.log10(high / low)) + 1
  return tuple(float(f"{v:.2g}") for v in np.geomspace(low, high, n))


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # Plain SGD, SGD with momentum and Adam: the two claims compare the SGD family
  # (linear scaling) with an adaptive method. "sgd" and "momentum" are the registry's
  # "sgd" (torch form b ← μb + g, θ ← θ − αb; with μ = 0.9 exactly the paper form of
  # heavy_ball) at μ = 0 and 0.9, "adam" the registry's "adam"; all three are swept as one
  # injectable optimizer (run.sgd_or_adam), so they share one program per batch size.
  optimizers: tuple[str, ...] = ("sgd", "momentum", "adam")
  # The momentum every paper uses; Adam keeps its defaults (β = 0.9, 0.999, ε = 1e-8).
  momentum: float = 0.9
  # The learning-rate grids, quarter-decade steps (fine enough to place the best rate to
  # a fraction of a decade), placed from pilot runs so that every batch size has its best
  # value inside the grid and the largest values diverge. Momentum's is a decade lower
  # than SGD's: its effective step is α/(1 − 0.9). The runs are vmapped, so grid points
  # cost training time (cheap here), not compilation.
  sgd_learning_rates: tuple[float, ...] = _decades(0.01, 5.6, 4)
  momentum_learning_rates: tuple[float, ...] = _decades(1e-3, 0.56, 4)
  adam_learning_rates: tuple[float, ...] = _decades(3.2e-4, 0.18, 4)
  # Batch sizes, factor 4 apart: 16× from the smallest to the largest, so a linear rule
  # moves the best learning rate by 1.2 decades (2.4 grid steps). Each batch size is a
  # separate compiled program (sweep groups them), so quick keeps three.
  batch_sizes: tuple[int, ...] = (16, 64, 256)
  # The fixed budget in epochs (Goyal et al. and Smith & Le compare at equal epochs):
  # large batches take fewer steps, which is what pushes their best step size up.
  epochs: int = 10
  # One hidden layer of 64 ReLU units: trains in well under a second per grid on
  # 2 CPU cores; compilation (per batch size) dominates the runtime, not width.
  hidden_sizes: tuple[int, ...] = (64,)
  # sklearn digits, a stratified 75/25 train/validation split (1348/449 images); no test
  # set, since nothing is selected for a final score.
  val_fraction: float = 0.25
  # Let non-finite steps poison the run (which the sweep then marks diverged) rather than
  # skip them: a skipped step would hide the instability this study maps, and the program
  # without the finiteness branch compiles faster.
  skip_nonfinite: bool = False
  # Seeds change the initial weights and the batch order; the split is fixed.
  num_seeds: int = 2
  data_seed: int = 0
  # "Good" learning rates: mean validation accuracy within this of the column's best
  # (1 percentage point ≈ 4.5 validation images).
  tolerance: float = 0.01

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)

  def learning_rates(self, optimizer: str) -> tuple[float, ...]:
    """The learning-rate grid of `optimizer`."""
    grids = {"sgd": self.sgd_learning_rates, "momentum": self.momentum_learning_rates,
             "adam": self.adam_learning_rates}
    if optimizer not in grids:
      raise ValueError(f"learning_rates: no grid for optimizer {optimizer!r}; expected one of "
                       f"{sorted(grids)}")
    return grids[optimizer]

  def hyperparameters(self, optimizer: str) -> dict[str, float]:
    """The values of run.sgd_or_adam's hyperparameters besides α that make `optimizer`."""
    if optimizer == "sgd":
      return {"momentum": 0.0, "adaptive": 0.0}
    if optimizer == "momentum":
      return {"momentum": self.momentum, "adaptive": 0.0}
    if optimizer == "adam":
      return {"momentum": 0.0, "adaptive": 1.0}
    raise ValueError(f"hyperparameters: unknown optimizer {optimizer!r}; expected 'sgd', "
                     "'momentum' or 'adam'")


# Three optimizers × 12 learning rates × 3 batch sizes × 2 seeds: 216 runs in 3 compiled
# programs (one per batch size); the runtime is mostly compiling.
QUICK = Config(name="quick")

# Five batch sizes (16 … 256, factor 2), three seeds, twice the epochs, the grids extended
# half a decade down (longer training moves the best rates down): 5 programs, 630 runs.
FULL = Config(
  name="full",
  sgd_learning_rates=_decades(3.2e-3, 5.6, 4),
  momentum_learning_rates=_decades(3.2e-4, 0.56, 4),
  adam_learning_rates=_decades(1e-4, 0.18, 4),
  batch_sizes=(16, 32, 64, 128, 256),
  epochs=20,
  num_seeds=3,
)

CONFIGS = {"quick": QUICK, "full": FULL}
