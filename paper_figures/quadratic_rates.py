"""Draws the quadratic_rates figures from saved results (never runs the study).

  python paper_figures/quadratic_rates.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Figure 1 (``quadratic_rates.png``): one panel per condition number κ, the relative
error ‖x_k − x*‖/‖x_0 − x*‖ of each method against the iteration k (solid), and
the theoretical rate drawn through the fit window (dashed): C ρ^k for gradient
descent, C k ρ^k for heavy ball and Nesterov, whose iteration matrices have a
double root. The legend gives the measured rate ρ̂ and the theory ρ.

Figure 2 (``quadratic_rates_noisy.png``): the same methods with additive gradient
noise; the geometric mean over seeds with a ±1 standard deviation band (of log10
error), and the predicted noise floor (dotted).

The records come from ``experiments/quadratic_rates/run.py``; by default the most
recent run in the file is drawn.
"""

from __future__ import annotations

import math
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
try:
  from optlab import studies
except ImportError:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
  from optlab import studies

DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "quadratic_rates.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "quadratic_rates.png"
STUDY = "quadratic_rates"
METHODS = ("gd", "heavy_ball", "nesterov", "adam", "adagrad")
LABELS = {"gd": "GD", "heavy_ball": "heavy ball", "nesterov": "Nesterov", "adam": "Adam",
          "adagrad": "AdaGrad"}
COLORS = {"gd": "tab:blue", "heavy_ball": "tab:red", "nesterov": "tab:green",
          "adam": "tab:purple", "adagrad": "tab:orange"}
DPI = 110
YLABEL = r"$\|x_k - x^\star\| \,/\, \|x_0 - x^\star\|$"


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def _curve(record: dict) -> tuple[np.ndarray, np.ndarray]:
  """(k, e_k) with non-positive and missing errors (underflow, divergence) masked."""
  k = np.asarray(record["curve"]["iterations"], dtype=np.float64)
  e = np.array([np.nan if v is None else v for v in record["curve"]["errors"]], dtype=np.float64)
  return k, np.where(e > 0, e, np.nan)


def _theory_line(record: dict) -> tuple[np.ndarray, np.ndarray] | None:
  """The theory ρ through the middle of the fit window (with the fit's k factor, if any)."""
  fit, rate = record.get("fit"), record.get("theory_rate")
  if not fit or not rate:
    return None
  k_start, k_end = fit["window"]
  k_mid = 0.5 * (k_start + k_end)
  double = fit["model"].startswith("C k")
  log_mid = fit["intercept"] + fit["log_rate"] * k_mid + (math.log(k_mid) if double else 0.0)
  k = np.linspace(max(1.0, 0.5 * k_start), k_end, 200)
  log_e = log_mid + math.log(rate) * (k - k_mid) + (np.log(k / k_mid) if double else 0.0)
  return k, np.exp(log_e)


def _rate_label(record: dict) -> str:
  label = LABELS[record["method"]]
  measured, theory = record.get("measured_rate"), record.get("theory_rate")
  if record["method"] in ("adam", "adagrad"):
    label += f" (α={record['hyperparameters']['learning_rate']:g})"
  label += f": ρ̂={measured:.5f}" if measured is not None else ": ρ̂ —"
  label += f", ρ={theory:.5f}" if theory is not None else ", no theory"
  return label


def _panels(plt, count: int):
  fig, axes = plt.subplots(1, count, figsize=(4.6 * count, 5.2), squeeze=False)
  return fig, axes[0]


def draw_deterministic(records: list[dict], out_path: pathlib.Path) -> pathlib.Path:
  """Figure 1: relative error against iteration, one panel per κ, theory dashed."""
  import matplotlib.pyplot as plt

  kappas = sorted({r["kappa"] for r in records})
  fig, axes = _panels(plt, len(kappas))
  cfg = records[0].get("config", {})
  bottom = cfg.get("curve_stop", 1e-36)
  for ax, kappa in zip(axes, kappas, strict=True):
    panel = [r for r in records if r["kappa"] == kappa]
    seed = min(r["seed"] for r in panel)
    x_max = 0.0
    for method in METHODS:
      for r in panel:
        if r["method"] != method or r["seed"] != seed:
          continue
        k, e = _curve(r)
        ax.semilogy(k, e, color=COLORS[method], lw=2.6, alpha=0.6, label=_rate_label(r))
        line = _theory_line(r)
        if line is not None:  # black dashes on the wide coloured curve: visible where equal
          ax.semilogy(*line, color="black", lw=0.9, ls=(0, (3, 2)))
          x_max = max(x_max, r["fit"]["window"][1])
    x_max = 1.1 * x_max if x_max else max(max(r["curve"]["iterations"]) for r in panel)
    ax.set_xlim(0, x_max)
    ax.set_ylim(bottom, 10.0)
    ax.set_title(f"κ = {kappa:g}")
    ax.set_xlabel("iteration k")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
  axes[0].set_ylabel(YLABEL)
  fig.suptitle(
    f"Linear rates on quadratics (d={records[0]['dim']}, {records[0]['spectrum']} spectrum, "
    f"float64, seed {min(r['seed'] for r in records)}): measured (coloured), theory "
    r"$C\rho^k$ (black dashes; $Ck\rho^k$ for heavy ball and Nesterov) through the fit window",
    fontsize=10,
  )
  fig.tight_layout()
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=DPI)
  plt.close(fig)
  return out_path


def draw_noisy(records: list[dict], out_path: pathlib.Path) -> pathlib.Path:
  """Figure 2: noisy gradients, mean ± spread of log10 error over seeds, floors dotted."""
  import matplotlib.pyplot as plt

  kappas = sorted({r["kappa"] for r in records})
  fig, axes = _panels(plt, len(kappas))
  for ax, kappa in zip(axes, kappas, strict=True):
    for method in METHODS:
      group = [r for r in records if r["kappa"] == kappa and r["method"] == method]
      if not group:
        continue
      common = set(group[0]["curve"]["iterations"])
      for r in group[1:]:
        common &= set(r["curve"]["iterations"])
      ks = np.array(sorted(common), dtype=np.float64)
      logs = []
      for r in group:
        k, e = _curve(r)
        keep = np.isin(k, ks)
        logs.append(np.log10(e[keep]))
      logs = np.array(logs)
      mean, spread = np.nanmean(logs, axis=0), np.nanstd(logs, axis=0)
      level = float(np.sqrt(np.mean([r["noise_floor_measured"] ** 2 for r in group])))
      predicted = group[0].get("noise_floor_predicted")
      label = LABELS[method]
      if method in ("adam", "adagrad"):
        label += f" (α={group[0]['hyperparameters']['learning_rate']:g})"
      label += f": final level {level:.2e}"
      label += f", predicted floor {predicted:.2e}" if predicted else ""
      ax.loglog(ks, 10**mean, color=COLORS[method], lw=1.3, label=label)
      ax.fill_between(ks, 10 ** (mean - spread), 10 ** (mean + spread), color=COLORS[method],
                      alpha=0.2, lw=0)
      if predicted:
        ax.axhline(predicted, color=COLORS[method], lw=1.0, ls=":")
    ax.set_title(f"κ = {kappa:g}")
    ax.set_xlabel("iteration k (log scale; k = 0 not shown)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
  axes[0].set_ylabel(YLABEL)
  r0 = records[0]
  fig.suptitle(
    f"Noisy gradients g + σξ, σ={r0['noise_scale']:g} (d={r0['dim']}): mean over "
    f"{len({r['seed'] for r in records})} seeds, band ±1 std of log10 error; dotted: floor "
    "predicted by the stationary covariance; level: RMS over the last "
    f"{r0.get('config', {}).get('floor_fraction', 0.25):.0%} of iterations",
    fontsize=10,
  )
  fig.tight_layout()
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=DPI)
  plt.close(fig)
  return out_path


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> list[pathlib.Path]:
  """Draws the figures of one run from `results_path`; returns the files written.

  Args:
    results_path: the JSONL file written by ``experiments/quadratic_rates/run.py``.
    out_path: the PNG of the deterministic runs; the noisy runs go next to it, with
      ``_noisy`` added to the name.
    run_id: which run to draw; by default the last one in the file.
  """
  import matplotlib

  matplotlib.use("Agg")
  records = load(results_path, run_id)
  out_path = pathlib.Path(out_path)
  written = []
  deterministic = [r for r in records if r["variant"] == "deterministic"]
  noisy = [r for r in records if r["variant"] == "noisy"]
  if deterministic:
    written.append(draw_deterministic(deterministic, out_path))
  if noisy:
    noisy_path = out_path.with_name(f"{out_path.stem}_noisy{out_path.suffix}")
    written.append(draw_noisy(noisy, noisy_path))
  return written


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, "Redraw the quadratic_rates figures.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
