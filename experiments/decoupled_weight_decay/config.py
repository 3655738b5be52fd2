"""Configuration of the decoupled_weight_decay study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # The five heatmaps (Loshchilov & Hutter 2019, Fig. 2): Adam with the decay in the
  # gradient (L2), AdamW with the decay multiplied by α (torch/optax), AdamW in the
  # paper's form (decay multiplied by η_t only), SGD-momentum + L2, and SGDW.
  methods: tuple[str, ...] = ("adam_l2", "adamw_lr", "adamw_paper", "sgd_l2", "sgdw")
  # Training examples drawn (stratified) from Fashion-MNIST's official 60k training set:
  # few enough that the MLP overfits, which is what weight decay is there to fight.
  train_size: int = 5_000
  # Validation examples, also from the official training set (disjoint): they pick the
  # best cell; the test examples (from the official 10k test set) are only reported.
  val_size: int = 2_000
  test_size: int = 2_000
  # A one-hidden-layer MLP (optlab.models.MLP, ReLU): ~100k weights overfit 5k images,
  # and a 25-cell grid still trains in seconds on 2 CPU cores.
  hidden_sizes: tuple[int, ...] = (128,)
  # The paper's CIFAR runs use batch 128.
  batch_size: int = 128
  # Passes over the training set (η_t anneals to 0 over all of them): enough to reach
  # ~100% training accuracy, so that what decay buys is generalization.
  epochs: int = 12
  # "cosine" (the paper's η_t, annealed to 0 without restarts) or "constant" (η_t = 1;
  # used by the tests to check the two AdamW conventions against each other).
  schedule: str = "cosine"
  # Fixed, not tuned: Adam's β₁ = 0.9, β₂ = 0.999, ε = 1e-8 (the paper's) and the
  # momentum 0.9 of the paper's SGD(W).
  momentum: float = 0.9
  # The α grids (decade steps in quick), placed from pilot runs so that the best α is
  # interior: ~1e-3..1e-2 for Adam and ~0.03..0.1 for SGD-momentum at this budget.
  adam_learning_rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
  sgd_learning_rates: tuple[float, ...] = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
  # The λ grids, one per convention, since λ means something different in each, each
  # spanning "no visible effect" to "too much decay" at the best α (pilot runs):
  # Adam + L2 (the coefficient of θ in the gradient, which Adam then normalizes);
  adam_l2_decays: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
  # SGD + L2 (the per-step decay is α·λ);
  sgd_l2_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
  # "lr": the per-step decay is α_t·λ, so λ is larger by ~1/α;
  lr_decays: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
  # "paper" (AdamW and SGDW): the per-step decay is η_t·λ, independent of α.
  paper_decays: tuple[float, ...] = (3e-6, 3e-5, 3e-4, 3e-3, 3e-2)
  # Seeds change the initial weights and the minibatch order; the data split is fixed.
  num_seeds: int = 1
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)

  def learning_rates(self, method: str) -> tuple[float, ...]:
    """The α grid of `method`."""
    return self.sgd_learning_rates if method.startswith("sgd") else self.adam_learning_rates

  def decays(self, method: str) -> tuple[float, ...]:
    """The λ grid of `method` (in that method's own convention)."""
    return {"adam_l2": self.adam_l2_decays, "sgd_l2": self.sgd_l2_decays,
            "adamw_lr": self.lr_decays,
            "adamw_paper": self.paper_decays, "sgdw": self.paper_decays}[method]


# 5×5 decade grids, one seed: about a minute on 2 shared CPU cores.
QUICK = Config(name="quick")

# 7×7 grids over the same ranges (two-thirds-decade steps), twice the epochs, two seeds
# (about 8 minutes on 2 shared CPU cores).
def _grid(low: float, high: float, n: int = 7) -> tuple[float, ...]:
  return tuple(float(f"{v:.2g}") for v in np.geomspace(low, high, n))


FULL = Config(
  name="full",
  epochs=30,
  num_seeds=2,
  adam_learning_rates=_grid(3e-4, 3e-2),
  sgd_learning_rates=_grid(3e-3, 3e-1),
  adam_l2_decays=_grid(1e-4, 1.0),
  sgd_l2_decays=_grid(1e-5, 1e-1),
  lr_decays=_grid(1e-3, 10.0),
  paper_decays=_grid(3e-6, 3e-2),
)

CONFIGS = {"quick": QUICK, "full": FULL}
