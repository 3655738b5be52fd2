"""Configuration of the adversarial_training study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # sklearn digits, pixels scaled from [0, 16] to [0, 1] (the attack's data bounds), a
  # stratified 75/25 train/test split: 1,348 / 449 images, small enough to train
  # adversarially in seconds.
  test_fraction: float = 0.25
  # MLP 64-64-10, ReLU (~4.8k weights): reaches ~97% clean test accuracy on digits, and
  # is wide enough to fit adversarial examples too (Madry et al.: capacity matters).
  hidden_sizes: tuple[int, ...] = (64,)
  # Adam (registry "adam"), α = 3e-3, batch 64 (21 steps per epoch): converges on clean
  # digits in ~20 epochs; the same for every method, so only the objective differs.
  learning_rate: float = 3e-3
  batch_size: int = 64
  epochs: int = 30
  # The training threat model: L∞, ε = 0.1 on [0, 1] pixels (1.6 of digits' 16 grey
  # levels; in pilots a standard MLP keeps only ~20% accuracy at this radius).
  norm: str = "linf"
  train_epsilon: float = 0.1
  # PGD during training: 5 steps of α = 2.5 ε / 5 from a uniform random start (Madry et
  # al.'s step rule; few steps keep the training cost at ~6 passes per batch).
  train_steps: int = 5
  # TRADES' β: 1 (close to standard training) and 6 (the paper's choice for MNIST/CIFAR):
  # the claim is that β moves the clean/robust trade-off (β is traced: no recompilation).
  trades_betas: tuple[float, ...] = (1.0, 6.0)
  # Evaluation radii (L∞): 0 (clean) to 2× the training ε; the training ε is one of them.
  eval_epsilons: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2)
  # Evaluation PGD: 20 steps of α = 2.5 ε / 20, random start (4× the training attack's
  # steps, so robustness is not an artefact of a weak attack), on all 449 test images.
  eval_steps: int = 20
  # Seeds change the initial weights, the batch order and the attacks' random starts;
  # the split is fixed by data_seed.
  num_seeds: int = 2
  data_seed: int = 0

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return self._replace(**changes)


# One compiled program: every (model, seed) trained (standard = Madry at ε = 0; Madry and
# TRADES picked per run by lax.switch) and attacked at every ε, vmapped over the runs.
QUICK = Config(name="quick")

# More seeds, a longer budget, a wider β range and a stronger evaluation attack.
FULL = Config(name="full", epochs=60, num_seeds=5, trades_betas=(0.5, 1.0, 3.0, 6.0),
              eval_steps=50)

CONFIGS = {"quick": QUICK, "full": FULL}
