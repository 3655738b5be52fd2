"""Configuration of the marginal_value study; every value says why it is what it is."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Variant:
  """One optimizer as the study runs it: a registry name, a schedule and a grid of α."""

  # The name in tables, records and the figure.
  label: str
  # The `optlab.optim` registry name; its defaults (the papers') fill in everything else.
  method: str
  # The log-spaced grid of learning rates; the pick is the one that trains best.
  learning_rates: tuple[float, ...]
  # True: the grid is in units of 1/n (α = value / n). The curvature of ½‖Xw − y‖², a
  # sum over points, grows ∝ n (λ_max(XᵀX) ≈ 2.0n at p = 0.55 to 2.9n at p = 0.95).
  per_point: bool = False
  # "constant", or "cosine" (α_t = α ½(1 + cos(π t/T)), decayed to 0 at the end).
  schedule: str = "constant"
  # Hyperparameters other than α, as (name, value) pairs; none: the registry's defaults.
  hyperparameters: tuple[tuple[str, float], ...] = ()


VARIANTS = (
  # Stable for α < 2/λ_max ≈ 0.7/n–1/n: the top of the grid diverges on purpose, so the
  # pick (0.3/n) is interior.
  Variant("gd", "gd", (0.03, 0.1, 0.3, 1.0), per_point=True),
  # The residual lives in a 2-D invariant subspace of XXᵀ with κ ≈ 2 (p = 0.55) to 22
  # (p = 0.95), where Polyak's best β = ((√κ−1)/(√κ+1))² is 0.03–0.42; β = 0.5 is near it.
  # (With 0.9 the rate is √β ≈ 0.95 for every α in the grid, and the pick is noise.)
  # Stable for α < 2(1+β)/λ_max ≈ 1.0/n–1.5/n: the top of the grid (3/n) diverges.
  Variant("heavy_ball", "heavy_ball", (0.03, 0.1, 0.3, 1.0, 3.0), per_point=True,
          hyperparameters=(("momentum", 0.5),)),
  # The paper's AdaGrad: accumulator G_0 = 0, ε = 1e-10 outside the root (the defaults).
  # On the ray w = λ sign(Xᵀy) the residual is (4λ − 1) y, and α = ¼ solves in one step;
  # the grid brackets it (0.01 is too slow to get to 1e-20 in T steps; from 0.3 up the
  # score is flat at large p: AdaGrad's first steps overshoot, then its G catches up).
  Variant("adagrad", "adagrad", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)),
  # RMSProp (ρ = 0.9, ε = 1e-8 outside the root, PyTorch's defaults) with a constant step
  # does not converge here: its average of g² forgets the large early gradients, the
  # effective step grows as the gradient shrinks, and the loss settles at a level ∝ α².
  # Decaying α to 0 (cosine) lets it interpolate; the constant-step run is kept below.
  # Along the ray λ moves ~α per step and must reach ¼: α = 1e-4 does not arrive in T.
  Variant("rmsprop", "rmsprop", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), schedule="cosine"),
  # The same RMSProp with a constant step, to show that the claim does not depend on the
  # decay (the grid reaches down to where α is too small to get there in T steps).
  Variant("rmsprop_const", "rmsprop", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)),
  # Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8): its second moment remembers the early
  # gradients for ~1000 steps, so a constant step converges within T (α = 1e-4 is too
  # slow to arrive, α = 0.3 stalls above the target).
  Variant("adam", "adam", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)),
)

# `run.py --eps-ablation`: ε comparable to the gradients. ε adds a multiple of the GD step
# Xᵀr to the sign-like step, so the solution leaves the ray towards the minimum-norm
# one; near p = ½ that can flip the label of a fresh negative point. Same grids as above.
EPS_ABLATION = (
  Variant("adagrad_eps1", "adagrad", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
          hyperparameters=(("eps", 1.0),)),
  Variant("rmsprop_eps.1", "rmsprop", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), schedule="cosine",
          hyperparameters=(("eps", 0.1),)),
  Variant("adam_eps.1", "adam", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3),
          hyperparameters=(("eps", 0.1),)),
  Variant("adam_eps1", "adam", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3),
          hyperparameters=(("eps", 1.0),)),
)


@dataclasses.dataclass(frozen=True)
class Config:
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # Towards ½ the adaptive methods' error 1 − p grows; at 0.9 both classes still occur.
  ps: tuple[float, ...] = (0.55, 0.6, 0.7, 0.8, 0.9)
  # Training points; d = 3 + 5n. Large enough that every seed's training set has more
  # positives than negatives (the condition X sign(Xᵀy) = 4y of the paper's Lemma 3.1)
  # even at p = 0.55 (at n = 100, seeds 0 and 6 do not); the structured Xw and Xᵀr cost
  # O(d) per step, so n is nearly free.
  n: int = 500
  # Fresh points per (p, seed); the sampling error of their negative fraction is ~1%.
  n_test: int = 2000
  # Datasets (training set and test set), seed 0, 1, ...: enough for a spread.
  num_seeds: int = 3
  # Every method reaches f(w)/f(0) ≤ 1e-20 well within this (GD and AdaGrad in ~200
  # steps, Adam and cosine RMSProp in ~1000-2000); one program runs all of it in seconds.
  num_iterations: int = 2000
  # An α qualifies if it ends with f(w)/f(0) ≤ this on every dataset: deep
  # interpolation, 10 decades above rounding, yet decisive against an α that stalls.
  target: float = 1e-20
  # Among those, the pick has the lowest mean over the run of log10 max(f(w_k)/f(0),
  # floor) (an anytime measure: fast and deep wins); the floor is float64's rounding
  # level of f/f(0) (‖Xw − y‖ ~ 1e-15 ‖y‖), below which differences are noise.
  loss_floor: float = 1e-30
  # Scores this close (in decades) are ties: near the floor they are set by when rounding
  # is reached (AdaGrad at p = 0.8: 14 iterations with α = 0.3, 12 with α = 3, a 0.17
  # difference), and AdaGrad's and Adam's are flat over large ranges of α. The smallest
  # α within the tie is picked: the safer step.
  tie_decades: float = 0.5
  # The optimizers, their schedules and learning-rate grids (see `VARIANTS`).
  variants: tuple[Variant, ...] = VARIANTS
  # The p whose training curves the figure shows: the middle of the sweep.
  curve_p: float = 0.7
  # Stored points per training curve (half linear, half log-spaced in k).
  max_curve_points: int = 200
  # None for the study itself; "eps" for the ε ablation (its records say so, and the
  # figure skips them).
  ablation: str | None = None

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)


# 15–20 s on 2 busy CPU cores (about 2 s of it compiling).
QUICK = Config(name="quick")

# The numbers to quote: a finer sweep of p, more datasets, bigger test sets (3–4 min).
FULL = Config(
  name="full",
  ps=(0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),  # a finer sweep of p
  num_seeds=10,  # ten datasets per p
  n_test=5000,  # sampling error of the negative fraction ~0.6%
  num_iterations=4000,  # twice as long: the picks and the plateaus are not artefacts of T
)

CONFIGS = {"quick": QUICK, "full": FULL}
