"""Learning curves drawn from a fit history (in memory or a JSONL file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _evaluations(history: Sequence[dict[str, Any]] | str | Path, run: str | None):
  if isinstance(history, (str, Path)):
    from optlab.train.history import read_history

    return read_history(history, run)
  return list(history)


def plot_learning_curves(
    history: Sequence[dict[str, Any]] | str | Path,
    out_path: str | Path,
    *,
    metrics: Sequence[str] = ("loss", "accuracy"),
    run: str | None = None,
    title: str | None = None,
) -> Path:
  """Draws train vs validation vs test curves, one panel per metric, into `out_path`.

  Args:
    history: ``FitResult.history`` or the path of a history JSONL file.
    out_path: where to write the figure (PNG, PDF, SVG by suffix).
    metrics: the quantities to draw; each panel shows ``train_<m>``, ``val_<m>``
      and ``test_<m>`` where logged.
    run: with a file holding several runs, which one (default: the last); a resumed
      run's epochs are read as ``optlab.train.history.read_history`` resolves them.
    title: the figure title.

  Returns:
    The path written.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  evaluations = _evaluations(history, run)
  panels = [m for m in metrics if any(f"{p}_{m}" in e for e in evaluations
                                      for p in ("train", "val", "test"))]
  if not panels:
    raise ValueError(f"none of {list(metrics)} was logged")
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
  styles = {"train": ("tab:blue", "-"), "val": ("tab:orange", "-"), "test": ("tab:green", "--")}
  for ax, metric in zip(axes[0], panels, strict=True):
    for prefix, (color, line) in styles.items():
      key = f"{prefix}_{metric}"
      points = [(e["epoch"] + 1, e[key]) for e in evaluations if e.get(key) is not None]
      if points:
        epochs, values = zip(*points, strict=True)
        ax.plot(epochs, values, line, color=color, label={"val": "validation"}.get(prefix, prefix))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric == "loss":
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  out_path = Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=110)
  plt.close(fig)
  return out_path
