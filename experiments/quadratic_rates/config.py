"""Configuration of the quadratic_rates study; every value says why it is what it is."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  """What `run.py` runs. `QUICK` is the default; `FULL` is the one to quote."""

  name: str
  # Three decades of conditioning: rates that differ visibly (κ=10) to ones where
  # acceleration saves 30× the iterations (κ=1000, √κ ≈ 32).
  condition_numbers: tuple[float, ...] = (10.0, 100.0, 1000.0)
  # Large enough for a dense spectrum (the worst case is approached, not assumed),
  # small enough that a 100×100 mat-vec per step costs microseconds.
  dim: int = 100
  # Evenly spaced eigenvalues in [μ, L]: every part of the spectrum is populated,
  # the setting of Goh (2017); "geometric" is the other choice.
  spectrum: str = "linear"
  # A random eigenbasis, so the diagonal preconditioners of Adam and AdaGrad get no
  # free help from an axis-aligned Hessian.
  rotate: bool = True
  # μ = 1 without loss of generality: the rates depend on κ only.
  mu: float = 1.0
  # x* = 0, so the iterate *is* the error and float64 keeps its relative precision
  # down to ~1e-300: curves follow ρ^k far below the ~1e-16 floor that rounding x
  # near a nonzero x* imposes. Rates are translation invariant in exact arithmetic.
  minimizer_at_origin: bool = True
  # GD at κ=1000 contracts by (κ−1)/(κ+1) ≈ e^{−0.002} per step: 15,000 steps reach
  # ~1e-13, past the 1e-10 asked of the study; each run still takes ~0.05 s.
  num_iterations: int = 15_000
  # Problem draws (basis, start). The rates depend on the spectrum only, so one draw
  # suffices for the claim; more show that the start does not matter.
  num_seeds: int = 1
  # Fit log e_k (GD) or log(e_k/k) (heavy ball, Nesterov: a double root) on the late
  # part of the curve: from where e_k ≤ 1e-3 (the transient of the faster modes has
  # passed) ...
  fit_upper: float = 1e-3
  # ... down to 1e-30: the asymptotic rate is approached slowly when the spectrum is
  # dense (at κ=10, d=100 the neighbours of μ and L contract only ~2% faster), so the
  # window must be long: ending it at 1e-10 biases the κ=10 exponents by 1.6-2.9%
  # (and by up to 5% with x* ≠ 0, whose rounding floor is ~1e-16); at 1e-30, < 0.2%.
  fit_lower: float = 1e-30
  # ... and only the last half of the iterations before the window's lower end.
  fit_late_fraction: float = 0.5
  # The accuracy of iterations-to-target, a common stopping tolerance.
  target: float = 1e-6
  # Adam's and AdaGrad's step sizes have no theory on quadratics: a half-decade grid
  # per κ, picked by the lowest final relative error on the first seed (the runner
  # flags a pick at the edge of its grid). Adam's error stalls at a level ∝ α, so its
  # grid reaches down to 1e-4; AdaGrad's steps α/√G shrink, so its grid reaches up to
  # 30 (its score is flat within ~10% from α ≈ 1 up to 300 at κ=1000, so an edge pick
  # there means "any large α").
  adam_learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
  adagrad_learning_rates: tuple[float, ...] = (3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 30.0)
  # Additive gradient noise σ ξ, ξ ~ N(0, I): puts the noise floors at ~1e-3-1e-4
  # relative error, well above float64's resolution and well below the start.
  noise_scale: float = 1e-2
  # Seeds (problem draw and noise) for the noisy variant: enough for a spread.
  num_noisy_seeds: int = 5
  # Long enough for GD at κ=1000 to reach its floor (~5,000 steps) and then average it.
  noisy_num_iterations: int = 10_000
  # The floor is the RMS relative error over this last fraction of the noisy run
  # (2,500 steps, ≫ the slowest mode's relaxation time of ~250 steps).
  floor_fraction: float = 0.25
  # Stored points per curve (rates are fitted on the full curve, before subsampling).
  max_curve_points: int = 500
  # Curves are stored up to where they fall below this (the fit window plus margin).
  curve_stop: float = 1e-36

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)


# Well under a minute on 2 CPU cores (most of it compilation).
QUICK = Config(name="quick")

# The numbers to quote: a denser spectrum, longer runs, more seeds (a few minutes).
FULL = Config(
  name="full",
  dim=400,  # a denser spectrum: the worst case approached more slowly, still measured
  num_iterations=30_000,  # GD at κ=1000 reaches ~1e-26
  num_seeds=3,  # three problem draws per κ
  num_noisy_seeds=10,  # a tighter estimate of the spread
)

CONFIGS = {"quick": QUICK, "full": FULL}
