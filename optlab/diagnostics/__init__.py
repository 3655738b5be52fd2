"""Diagnostics: curvature, gradient noise, loss landscapes and per-layer update statistics.

Submodules:
  - :mod:`optlab.diagnostics.hessian`: Hessian-vector products, sharpness by power
    iteration (and a warm-started tracker for training), top eigenpairs by Lanczos
    or deflated power iteration.
  - :mod:`optlab.diagnostics.noise`: the gradient noise scale and the critical batch
    size (McCandlish et al. 2018).
  - :mod:`optlab.diagnostics.landscape`: 1-D interpolation (Goodfellow et al. 2015)
    and 2-D filter-normalized slices (Li et al. 2018) of the loss, with plots.
  - :mod:`optlab.diagnostics.updates`: per-layer ``‖Δθ‖/‖θ‖`` and effective learning
    rate ``‖Δθ‖/‖g‖``, logged by ``optlab.train.fit(..., update_stats=True)``.
"""

from __future__ import annotations

from optlab.diagnostics import hessian, landscape, noise, updates
from optlab.diagnostics.hessian import (
    HessianEigen,
    SharpnessTracker,
    dense_hessian,
    hvp,
    sharpness,
    top_eigenvalues,
)
from optlab.diagnostics.landscape import (
    filter_normalized_direction,
    interpolate,
    plot_interpolation,
    plot_slice,
    slice_2d,
)
from optlab.diagnostics.noise import (
    CriticalBatch,
    NoiseScale,
    fit_critical_batch_size,
    gradient_noise_scale,
    per_example_noise_scale,
)
from optlab.diagnostics.updates import layer_curves, plot_update_statistics, update_statistics

__all__ = [
    "CriticalBatch",
    "HessianEigen",
    "NoiseScale",
    "SharpnessTracker",
    "dense_hessian",
    "filter_normalized_direction",
    "fit_critical_batch_size",
    "gradient_noise_scale",
    "hessian",
    "hvp",
    "interpolate",
    "landscape",
    "layer_curves",
    "noise",
    "per_example_noise_scale",
    "plot_interpolation",
    "plot_slice",
    "plot_update_statistics",
    "sharpness",
    "slice_2d",
    "top_eigenvalues",
    "update_statistics",
    "updates",
]
