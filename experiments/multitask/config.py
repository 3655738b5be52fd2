"""Configuration of the multitask study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # Training images drawn (stratified) from sklearn digits: few enough that the tasks can help
  # each other (with the whole set every method is at ~97% and nothing can be seen), enough
  # for ~85-90% digit accuracy in a short budget.
  train_size: int = 300
  # Test fraction of digits (449 images): a binomial standard error of ~1.5 points at 90%.
  test_fraction: float = 0.25
  # The coarse task: "parity" (even/odd digit), a fixed function of the digit that the
  # pixels do not show as one visual trait, so a single-task parity model must learn it from
  # the digits' shapes alone; "high" (digit ≥ 5) is the alternative.
  coarse: str = "parity"
  # Shared trunk: one hidden layer of 64 ReLU units (64-64), heads Linear(64, 10) and
  # Linear(64, 2); the single-task models are the same network with one head.
  hidden: int = 64
  # Adam, α = 3e-3, batch 32 (9 steps per epoch): converges within the budget on 300 images
  # for every method; the same for all methods (no per-method tuning; see README).
  learning_rate: float = 3e-3
  batch_size: int = 32
  epochs: int = 40
  # GradNorm (Chen et al. 2018): α = 1.5 (their NYUv2 value), Adam on the weights with step
  # 0.025, the paper's W = the last shared layer's kernel.
  gradnorm_alpha: float = 1.5
  gradnorm_learning_rate: float = 0.025
  # Kendall et al.'s classification form exp(−s) L + ½ s for both (classification) tasks.
  uncertainty_convention: str = "classification"
  # Seeds change the initial weights, the batch order and PCGrad's orders; the data split and
  # subsample are fixed by data_seed. All seeds of a method train as one vmapped program.
  num_seeds: int = 3
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# Six compiled programs (one per method, seeds vmapped): ~10 s on 2 idle cores.
QUICK = Config(name="quick")

# More data regimes would change the picture; the full run keeps the workload and adds
# seeds and epochs, so the spread across methods is measured better.
FULL = Config(name="full", epochs=80, num_seeds=10)

CONFIGS = {"quick": QUICK, "full": FULL}
