"""Configuration of the trajectories study; every value says why it is what it is."""

from __future__ import annotations

import dataclasses


def log_grid(low_exponent: float, high_exponent: float, per_decade: int) -> tuple[float, ...]:
  """10**e for e from `low_exponent` to `high_exponent` in steps of 1/`per_decade`."""
  count = round((high_exponent - low_exponent) * per_decade) + 1
  return tuple(float(f"{10 ** (low_exponent + i / per_decade):.6g}") for i in range(count))


@dataclasses.dataclass(frozen=True)
class Config:
  """What `run.py` runs. `QUICK` is the default and draws the committed figure."""

  name: str
  # The two classic 2-D test functions with contour-plot bounds in optlab.problems:
  # a curved valley (Rosenbrock) and plateaus with steep ridges (Beale).
  problems: tuple[str, ...] = ("rosenbrock", "beale")
  # The six first-order methods of the claim, by their optlab registry names.
  optimizers: tuple[str, ...] = ("gd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam")
  # Enough for heavy ball, Nesterov and Adam to reach 1e-6 on Rosenbrock (~400-1,400
  # steps) while GD, AdaGrad and RMSProp do not: the slow valley is the point of the figure.
  rosenbrock_steps: int = 2_000
  # Beale is easier: momentum and Adam reach 1e-6 in ~150 steps, AdaGrad in ~300 and GD
  # in ~500, so half of Rosenbrock's budget still separates them (RMSProp stalls).
  beale_steps: int = 1_000
  # One learning-rate grid for every optimizer (no hand-placed ranges): 1e-5 ... 10 at
  # quarter decades (25 steps). It brackets every method's best step on both problems
  # (GD ~2e-3 on Rosenbrock, AdaGrad ~2 there), and the final gap can change by orders
  # of magnitude between half-decade neighbours, so a coarser grid would misrank methods.
  # Runs of a grid are one vmapped program, so 25 cost no more wall time than 5.
  learning_rates: tuple[float, ...] = log_grid(-5, 1, 4)
  # Heavy ball and Nesterov: the usual fixed momentum; only the learning rate is tuned.
  momentum: float = 0.9
  # Adam (β₁ 0.9, β₂ 0.999), RMSProp (decay 0.9) and AdaGrad (G₀ = 0) keep the registry's
  # paper defaults; these are recorded per run in `hyperparameters`.
  # float64 throughout: f − f* resolves down to ~1e-30 near x*, so neither the 1e-6 target
  # nor the selection of the best step is blurred by float32 rounding (~1e-7 relative).
  dtype: str = "float64"
  # The accuracy whose iterations are reported: the first k after which f(x_k) − f* <
  # target holds to the end of the run (a momentum swing through the target is no hit).
  target: float = 1e-6
  # Selection: the lowest final f − f*; a run is diverged (never picked unless all are)
  # if its final value is non-finite or above f(x_0).
  # Final gaps at or below this count as "converged" and tie (they differ by rounding
  # and by how long a run has sat at x*, not by quality; ‖x − x*‖ ≲ 1e-10 there); a tie
  # goes to the fewest iterations to `target`, then to the smaller step.
  tie_level: float = 1e-20
  # Stored points per path (half log-spaced in k for the fast early moves, a quarter
  # evenly spaced in arc length so oscillations are not cut, a quarter evenly in k).
  max_path_points: int = 400
  # optlab's second-order entries (issue 7), with their registry defaults and nothing tuned
  # (α = 1; the line search picks the step): Newton (dense Hessian, eigenvalue shift when it
  # is indefinite, Armijo backtracking) and L-BFGS (memory 10, zoom line search). Their
  # cost per iteration differs, so records count gradients, f values and Hessians.
  second_order: tuple[str, ...] = ("newton", "lbfgs")
  # Iterations for them: they reach 1e-6 within ~7-32 here; 60 shows them sit at x*.
  second_order_steps: int = 60
  # scipy's BFGS with its default gradient tolerance, the reference as users run it: it
  # ends at f − f* ~ 3e-15 (Rosenbrock, 32 iterations) and ~2e-16 (Beale, 15), far below
  # the target.
  bfgs_gtol: float = 1e-5
  # Safety cap on BFGS iterations (it needs ~30 here).
  bfgs_maxiter: int = 1_000

  def replace(self, **changes) -> Config:
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)

  def num_steps(self, problem: str) -> int:
    """The step budget on `problem` (the same for every optimizer)."""
    return {"rosenbrock": self.rosenbrock_steps, "beale": self.beale_steps}[problem]


# ~10 s of CPU time on 2 cores, almost all of it compiling 16 small programs (Newton and
# L-BFGS add ~2.5 s of it); wall time depends on the machine's load.
QUICK = Config(name="quick")

# Ten times the budget and a grid twice as fine (49 steps, 1/8 decade apart); GD and
# AdaGrad reach the target on Rosenbrock only here. About 7 s (the runs are tiny).
FULL = Config(
  name="full",
  rosenbrock_steps=20_000,  # GD needs ~5,000-10,000 steps along the valley's floor
  beale_steps=10_000,  # same ratio as quick mode
  learning_rates=log_grid(-5, 1, 8),  # a pick within 1/16 decade of the best on this range
)

CONFIGS = {"quick": QUICK, "full": FULL}
