"""Configuration of the critical_batch_size study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # sklearn digits, all 1,797 images as the training set (the targets are training losses):
  # small enough that a large batch is cheap and that the per-example gradients of the
  # whole set (the exact B_simple) fit easily.
  # "mnist1d" (4,000 signals, harder, slower) is the alternative.
  dataset: str = "digits"
  # An MLP 64-32-10, ReLU: optlab.models.MLP's architecture and initialization (drawn in
  # NumPy, the forward pass written out: one small program to compile).
  hidden_sizes: tuple[int, ...] = (32,)
  # Plain SGD (no momentum), the optimizer the paper's model is derived for; batches
  # drawn with replacement, so E|G_B|² = |G|² + tr Σ / B holds exactly.
  batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
  # Every batch size gets its own learning rate: the one of this grid (factor 2) that
  # reaches the target in the fewest steps (mean over seeds). Pilot runs: the best rate
  # grows ~∝ B up to B ~ 64-128 and saturates at 1.6-2.3 (near full-batch GD's limit).
  learning_rates: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
  # Training-loss targets (cross-entropy on the whole training set; at init it is ~2.3).
  # Lower targets need more steps and have larger critical batches (B_noise grows as
  # the loss falls), so three targets show that trend.
  targets: tuple[float, ...] = (0.2, 0.1, 0.05)
  # Step budget: small batches get `examples_budget` / B steps (pilot runs: ~1.9 × the
  # examples the best rate needs at the lowest target), large ones at least `min_steps`
  # (~2-3 × the steps they need there).
  examples_budget: int = 12_000
  min_steps: int = 120
  # The training loss is evaluated on the whole set at this many geometrically spaced
  # steps (11-17% apart, from 120 to 1,500 steps); steps-to-target is interpolated
  # log-linearly between the two evaluations around the crossing.
  eval_points: int = 48
  # B_simple is measured along every batch size's tuned run (seed 0, at the rate tuned
  # for the lowest target it reached), at every `noise_every`-th evaluation, exactly
  # from all per-example gradients. B_crit is compared with the median over batch sizes
  # of B_simple where the runs reach the target.
  noise_every: int = 3
  # The paper's two-batch estimator (App. A.1, ``gradient_noise_scale``) as a check along
  # the run at `reference_batch`: `noise_estimates` rounds of a big batch split into small
  # ones. 0 skips it (quick mode: its compilation costs 1.5 s of the 15 s budget).
  reference_batch: int = 32
  noise_small_batch: int = 8
  noise_big_batch: int = 512
  noise_estimates: int = 0
  # Seeds change the initial weights and the batches; the data is fixed.
  num_seeds: int = 2
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# 7 batch sizes × 7 learning rates × 2 seeds: one compiled program serves every batch size.
QUICK = Config(name="quick")

# Finer learning-rate grid (factor √2), batch sizes 4 … 1024, 4 seeds, the two-batch check.
FULL = Config(name="full", batch_sizes=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
              learning_rates=(0.035, 0.05, 0.07, 0.1, 0.14, 0.2, 0.28, 0.4, 0.57, 0.8, 1.13,
                              1.6, 2.26, 3.2, 4.5),
              examples_budget=40_000, min_steps=300, eval_points=80, noise_estimates=16,
              num_seeds=4)

CONFIGS = {"quick": QUICK, "full": FULL}
