"""Draws the optimizer_benchmark figure from saved results (never runs the study).

  python paper_figures/optimizer_benchmark.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Schmidt et al. (2021) / AlgoPerf (Dahl et al. 2023) style: one panel of validation
curves per workload (mean over seeds, shaded min–max; defaults thin, tuned Adam and
Nesterov thick and dashed; the target dotted), the performance profiles of the
median steps to target with each submission's benchmark score, and the rank table.
The records come from ``experiments/optimizer_benchmark/run.py``; by default the most
recent run is drawn.
"""

from __future__ import annotations

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

STUDY = "optimizer_benchmark"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
TITLES = {
  "noisy_quadratic": "Noisy quadratic",
  "mnist1d_mlp": "MNIST-1D, MLP",
  "fashion_mlp": "Fashion-MNIST, MLP",
  "char_lm": "Character LM (GRU)",
}
LOG_Y = {"noisy_quadratic"}
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def _curves(record: dict) -> np.ndarray:
  """(seeds, evaluations) validation curves; None (divergence) becomes NaN."""
  return np.array([[np.nan if v is None else v for v in row] for row in record["curves"]],
                  dtype=np.float64)


def _colors(optimizers: Sequence[str]) -> dict[str, tuple]:
  import matplotlib.pyplot as plt

  cmap = plt.get_cmap("tab10")
  return {name: cmap(i % 10) for i, name in enumerate(optimizers)}


def _rank_text(summary: dict) -> str:
  from optlab.tune.targets import format_table

  short = {"noisy_quadratic": "quad", "mnist1d_mlp": "mnist1d", "fashion_mlp": "fashion",
           "char_lm": "char"}
  rows = [{"submission": row["submission"],
           **{short.get(w, w): row[w] for w in summary["workloads"]},
           "mean": row["mean_rank"], "score": round(row["score"], 2)}
          for row in summary["rank_table_time"]]
  return ("ranks by median steps to target\n(ties share ranks; never: last)\n\n"
          + format_table(rows, precision=3))


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the curves, the performance profiles and the rank table; returns the file."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from optlab.tune.targets import Profile, plot_performance_profiles

  records = load(results_path, run_id)
  runs = [r for r in records if r.get("kind") == "run"]
  workloads = {r["workload"]: r for r in records if r.get("kind") == "workload"}
  summary = next(r for r in records if r.get("kind") == "summary")
  names = summary["workloads"]
  colors = _colors(list(dict.fromkeys(r["optimizer"] for r in runs)))
  fig, axes = plt.subplots(2, 3, figsize=(17, 10))
  panels = list(axes.flat)
  for ax, name in zip(panels, names, strict=False):
    w = workloads[name]
    for r in (r for r in runs if r["workload"] == name):
      c = _curves(r)
      steps = np.asarray(r["steps"])
      with np.errstate(all="ignore"):
        mean, low, high = np.nanmean(c, 0), np.nanmin(c, 0), np.nanmax(c, 0)
      style = dict(lw=2.4, ls="--") if r["tuned"] else dict(lw=1.2, ls="-")
      ax.plot(steps, mean, color=colors[r["optimizer"]], label=r["submission"], **style)
      ax.fill_between(steps, low, high, color=colors[r["optimizer"]], alpha=0.12, lw=0)
    ax.axhline(w["target"], color="black", ls=":", lw=1.2, label="target")
    if name in LOG_Y:
      ax.set_yscale("log")
    else:
      finite = np.concatenate([_curves(r)[:, -1] for r in runs if r["workload"] == name])
      finite = finite[np.isfinite(finite)]
      top = max(np.percentile(_curves(next(r for r in runs if r["workload"] == name))[:, 0],
                              50), float(np.max(finite)))
      ax.set_ylim(min(float(np.min(finite)), w["target"]) * 0.95, top * 1.02)
    tuned = "; ".join(f"{n}: " + ", ".join(f"{k.replace('learning_rate', 'α')}={v:.2g}"
                                             for k, v in t["best_config"].items())
                      for n, t in w["tuning"].items())
    ax.set_title(f"{TITLES.get(name, name)}\n{w['model']}\ntuned {tuned}", fontsize=9)
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel(w["metric"])
    ax.grid(alpha=0.3)
  handles, labels = panels[0].get_legend_handles_labels()
  profile_ax, table_ax = panels[len(names)], panels[len(names) + 1]
  p = summary["profile"]
  profile = Profile(
      tuple(p["submissions"]), tuple(p["workloads"]),
      {s: {k: np.inf if v is None else v for k, v in row.items()} for s, row in
       p["ratios"].items()},
      np.asarray(p["taus"]), {s: np.asarray(v) for s, v in p["rho"].items()}, p["scores"],
      p["max_tau"], tuple(p["dropped"]))
  plot_performance_profiles(profile, ax=profile_ax, title="Performance profiles "
                            "(median steps to target)")
  by_name = {r["submission"]: r for r in runs}
  for line in profile_ax.get_lines():
    sub = line.get_label().split(" (")[0]
    if sub in by_name:
      line.set_color(colors[by_name[sub]["optimizer"]])
      line.set_linestyle("--" if by_name[sub]["tuned"] else "-")
      line.set_linewidth(2.4 if by_name[sub]["tuned"] else 1.2)
  profile_ax.legend(fontsize=7.5, title="submission (score)", title_fontsize=8, loc="lower right")
  for ax in panels[len(names) + 2:]:
    ax.axis("off")
  table_ax.axis("off")
  table_ax.text(0.0, 1.0, _rank_text(summary), family="monospace", fontsize=8.5, va="top")
  fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9,
             bbox_to_anchor=(0.5, 1.0))
  cfg = records[0]["config"]
  fig.suptitle(f"Optimizers at their defaults vs Adam and Nesterov tuned by quasi-random "
               f"search ({cfg['n_trials']} trials each), {cfg['num_seeds']} seeds, "
               f"{cfg['name']} mode; curves: validation metric, mean over seeds, shaded "
               "min–max", y=1.03, fontsize=11)
  fig.tight_layout(rect=(0, 0, 1, 0.97))
  out_path = pathlib.Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=DPI, bbox_inches="tight")
  plt.close(fig)
  return out_path


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
