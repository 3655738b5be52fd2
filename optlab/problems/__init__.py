"""Analytic objectives with known minimizers, optimal values and constants.

Each problem is a `Problem` (f, a standard start, x*, f*), with closed-form extras
where they exist: a `Quadratic` knows its Hessian, spectrum, μ, L and condition
number; `rosenbrock` and `beale` carry contour-plot `bounds`; `LeastSquares` is the
Wilson et al. (2017) construction with a test-set sampler; `noisy` wraps any problem
with an unbiased stochastic gradient oracle. Depends on jax and numpy only.

Example:
  >>> from optlab import problems
  >>> q = problems.get("quadratic", dim=10, condition_number=100.0)
  >>> q.L / q.mu
  100.0
"""

from optlab.problems.base import Problem
from optlab.problems.classic import beale, rosenbrock
from optlab.problems.noisy import NoisyProblem, noisy
from optlab.problems.quadratic import Quadratic, quadratic, quadratic_from_eigenvalues
from optlab.problems.registry import get, names
from optlab.problems.wilson import LeastSquares, wilson_least_squares

__all__ = [
  "LeastSquares",
  "NoisyProblem",
  "Problem",
  "Quadratic",
  "beale",
  "get",
  "names",
  "noisy",
  "quadratic",
  "quadratic_from_eigenvalues",
  "rosenbrock",
  "wilson_least_squares",
]
