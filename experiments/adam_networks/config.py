"""Configuration of the adam_networks study; every value says why it is what it is."""

from __future__ import annotations

from typing import NamedTuple


class Config(NamedTuple):
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote.

  A NamedTuple (not a dataclass), so this file also works when imported by path
  without being registered in `sys.modules`; `cfg._replace(...)` makes variants.
  """

  name: str
  # The two comparison panels of Kingma & Ba (2015): Sec. 6.2 (Fig. 2, an MLP with
  # dropout on MNIST) and Sec. 6.3 (Fig. 3, a CNN), both on Fashion-MNIST here.
  networks: tuple[str, ...] = ("mlp", "cnn")
  # Sec. 6.2: "two fully connected hidden layers with 1000 hidden units each and ReLU";
  # 256 units keep it CPU-sized, the paper's dropout 0.5 is kept.
  mlp_hidden: tuple[int, ...] = (256, 256)
  mlp_dropout: float = 0.5
  # Sec. 6.3 used c64-c64-c128 + 1000 units; (16, 32) + 64 is the CPU-sized stand-in.
  cnn_channels: tuple[int, ...] = (16, 32)
  cnn_hidden: tuple[int, ...] = (64,)
  # Examples drawn (uniformly, once, from data_seed) from the official training set for
  # training and for validation (the α choice), and from the official test set.
  # None: all of it (training = 60,000 − validation).
  train_size: int | None = None
  val_size: int = 10_000
  test_size: int | None = None
  # The CNN's training examples, if fewer (its steps cost ~10x the MLP's on CPU).
  cnn_train_size: int | None = None
  # "minibatch size of 128" (Sec. 6.2-6.3).
  batch_size: int = 128
  # Passes over the training set, per network.
  mlp_epochs: int = 20
  cnn_epochs: int = 10
  # (name in the optlab registry, α grid): the six methods of Fig. 2-3. Half-decade
  # log grids of the same size (AdaDelta's α is fixed at 1.0, as in Zeiler 2012: it
  # has no step size to tune), placed from two pilot quick runs (3-point grids picked
  # an edge for 5 of 12 (network, optimizer) pairs: short runs favour large steps).
  # SGD-Nesterov is the registry's "nesterov" (momentum 0.9, the registry default).
  optimizers: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("sgd", (0.03, 0.1, 0.3, 1.0)),
    ("nesterov", (0.01, 0.03, 0.1, 0.3)),
    ("adagrad", (0.003, 0.01, 0.03, 0.1)),
    ("rmsprop", (1e-3, 3e-3, 1e-2, 3e-2)),
    ("adadelta", (1.0,)),
    ("adam", (1e-3, 3e-3, 1e-2, 3e-2)),
  )
  # Seeds change the init, the minibatch order and the dropout masks. The first seed
  # is the tuning seed: α is chosen on its final validation loss alone.
  num_seeds: int = 3
  data_seed: int = 0
  # --- The bias-correction ablation (Sec. 6.4, Fig. 4). The paper trained a VAE; here a
  # one-hidden-layer MLP (no dropout: the only noise is the minibatch) on a Fashion-MNIST
  # subset, the whole (β1 × β2 × α × corrected) grid as one vmapped program.
  bc_hidden: tuple[int, ...] = (64,)
  bc_train_size: int = 4_000
  bc_batch_size: int = 64
  # The loss is recorded every bc_record_every steps, on bc_eval_size training examples;
  # bias correction matters early (Fig. 4 reports 10 and 100 epochs; here steps).
  bc_steps: int = 200
  bc_record_every: int = 10
  bc_eval_size: int = 2_000
  bc_b1s: tuple[float, ...] = (0.0, 0.9)  # Fig. 4's two rows
  bc_b2s: tuple[float, ...] = (0.99, 0.999, 0.9999)  # Fig. 4's three columns
  # log10 α in [-4, -1.5]: Fig. 4 spans [-5, -1]; small α never show the instability.
  bc_learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
  bc_eps: float = 1e-8  # Adam's default (Algorithm 1)


# Quick: ~90 s on 2 shared CPU cores (more under heavy load). A 6k/1k/2k subsample
# (3k for the CNN), smaller nets, 3 (MLP) and 2 (CNN) epochs, 2 seeds; the ablation on 100 steps.
QUICK = Config(
  name="quick",
  mlp_hidden=(128, 128),
  cnn_channels=(8, 16),
  cnn_hidden=(32,),
  train_size=6_000,
  val_size=1_000,
  test_size=2_000,
  cnn_train_size=3_000,
  mlp_epochs=3,
  cnn_epochs=2,
  num_seeds=2,
  bc_steps=100,
)

# The numbers to quote: all of Fashion-MNIST, the stated networks, 3 seeds (not run on
# the 2-core development machine: expect hours there).
FULL = Config(name="full", bc_train_size=20_000, bc_steps=1_000, bc_record_every=50)

CONFIGS = {"quick": QUICK, "full": FULL}
