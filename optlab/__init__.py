"""optlab: a JAX research toolkit for optimizing models.

Layers (data flows down, never up): ``optlab.optim`` (optimizers, schedules,
registry), ``optlab.problems`` (objectives with known answers), and the
experiments built on them.
"""

from optlab import optim, problems

__version__ = "0.1.0"

__all__ = ["__version__", "optim", "problems"]
