"""optlab: a JAX research toolkit for optimizing models.

Layers (data flows down, never up): ``optlab.optim`` (optimizers, schedules,
registry), ``optlab.problems`` (objectives with known answers), ``optlab.data``
(offline datasets, preprocessing, augmentation, splits), ``optlab.models`` (Flax
NNX models), ``optlab.metrics`` and ``optlab.train`` (the training engine).
"""

from optlab._xla_flags import enable_default as _enable_cpu_fusion

_enable_cpu_fusion()  # OPTLAB_XLA_CPU_FUSION=1: XLA:CPU multi-output fusion, before JAX starts

from optlab import data, metrics, models, optim, problems, train  # noqa: E402
from optlab._cache import enable_default as _enable_compilation_cache  # noqa: E402

__version__ = "0.1.0"

_enable_compilation_cache()  # JAX's persistent cache: OPTLAB_CACHE_DIR, off under pytest

__all__ = ["__version__", "data", "metrics", "models", "optim", "problems", "train"]
