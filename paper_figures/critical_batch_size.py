"""Draws the critical_batch_size figure from saved results (never runs the study).

  python paper_figures/critical_batch_size.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Three panels, one colour per training-loss target: (a) the steps S and examples
E = B·S each batch size B needs to reach the target at its tuned learning rate, with
the fitted trade-off (S/S_min − 1)(E/E_min − 1) = 1 and its asymptotes S_min, E_min
(McCandlish et al. 2018, Fig. 7 style); (b) the simple noise scale B_simple along every
batch size's tuned run against its training loss, with the fitted B_crit of each target
(star) and the median B_simple where the runs reach it (circle, bar: range over batch
sizes), plus the two-batch estimate along the reference run where recorded; (c) the
tuned learning rate against the batch size (linear scaling, then saturation past
B_crit). The records come from ``experiments/critical_batch_size/run.py``; by default
the most recent run is drawn.
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

STUDY = "critical_batch_size"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict:
  """The record of one run (`run_id`, or the last one)."""
  return studies.load_run(results_path, STUDY, run_id)[-1]


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the three panels of one run; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  r = load(results_path, run_id)
  fig, axes = plt.subplots(1, 3, figsize=(18, 5.6), gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
  summary = {row["target"]: row for row in r["summary"]["targets"]}

  ax = axes[0]
  for c, t in enumerate(r["per_target"]):
    color = COLORS[c % len(COLORS)]
    pts = [(b["examples"], b["steps"], b["batch_size"]) for b in t["best"] if b["steps"]]
    e, s, bs = (np.array(v, np.float64) for v in zip(*pts, strict=True)) if pts else ([],) * 3
    ax.plot(e, s, "o", color=color, ms=6, mec="black", mew=0.5,
            label=f"loss ≤ {t['target']:g}")
    for ei, si, bi in zip(e, s, bs, strict=True):
      ax.annotate(f"{bi:g}", (ei, si), textcoords="offset points", xytext=(4, 3), fontsize=7,
                  color=color)
    f = t["fit"]
    if f["ok"]:
      grid = np.geomspace(0.25 * min(bs), 8 * max(bs), 200)
      steps = f["s_min"] * (1 + f["b_crit"] / grid)
      ax.plot(grid * steps, steps, "-", color=color, lw=1.2,
              label=f"  fit: S_min {f['s_min']:.1f}, E_min {f['e_min']:.0f}, "
                    f"B_crit {f['b_crit']:.0f}")
      ax.axhline(f["s_min"], color=color, ls=":", lw=0.9)
      ax.axvline(f["e_min"], color=color, ls=":", lw=0.9)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("examples E = B·S to reach the target")
  ax.set_ylabel("steps S to reach the target")
  ax.set_title("(a) steps vs examples per batch size B (labels), tuned α each;\nfit "
               "(S/S_min − 1)(E/E_min − 1) = 1, dotted: S_min and E_min", fontsize=10)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, loc="upper right")

  ax = axes[1]
  cmap = plt.get_cmap("Greys")
  noise = r["noise"]
  for i, run in enumerate(noise):
    shade = cmap(0.35 + 0.6 * i / max(1, len(noise) - 1))
    ax.plot(run["loss"], run["b_simple"], "-", color=shade, lw=1,
            label="B_simple along the tuned runs\n(B = "
                  f"{noise[0]['batch_size']} light … {noise[-1]['batch_size']} dark)"
            if i == 0 else None)
    if "b_simple_two_batch" in run:
      ax.plot(run["loss"], run["b_simple_two_batch"], "x", color="black", ms=5,
              label=f"two-batch estimate (B = {run['batch_size']} run)")
  for c, t in enumerate(r["per_target"]):
    color, row = COLORS[c % len(COLORS)], summary[t["target"]]
    if row["b_crit"] is not None:
      ax.plot(t["target"], row["b_crit"], "*", color=color, ms=15, mec="black", mew=0.6,
              label=f"B_crit {row['b_crit']:.0f} (loss ≤ {t['target']:g})")
    if row["b_simple"] is not None:
      low, high = t["b_simple_range"]
      ax.errorbar(t["target"], row["b_simple"],
                  yerr=[[row["b_simple"] - low], [high - row["b_simple"]]], fmt="o",
                  color=color, mec="black", mew=0.5, capsize=3,
                  label=f"B_simple {row['b_simple']:.0f} there (ratio {row['ratio']:.2f})"
                  if row["ratio"] is not None else None)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.invert_xaxis()
  ax.set_xlabel("training loss (training proceeds →)")
  ax.set_ylabel("batch size (examples)")
  ratios = r["summary"]["ratio_range"]
  ax.set_title("(b) the noise scale B_simple = tr Σ / |G|² grows as the loss falls;\n"
               + (f"B_crit / B_simple = {ratios[0]:.2f} … {ratios[1]:.2f}" if ratios else
                  "no fit"), fontsize=10)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7, loc="upper left")

  ax = axes[2]
  for c, t in enumerate(r["per_target"]):
    color = COLORS[c % len(COLORS)]
    pts = [(b["batch_size"], b["learning_rate"]) for b in t["best"] if b["steps"]]
    if pts:
      b, lr = np.array(pts, np.float64).T
      ax.plot(b * (1 + 0.04 * (c - 1)), lr, "o-", color=color, ms=5, lw=1,
              label=f"loss ≤ {t['target']:g}")
    if t["fit"]["ok"]:
      ax.axvline(t["fit"]["b_crit"], color=color, ls="--", lw=0.9)
  b = np.asarray(r["batch_sizes"], np.float64)
  ax.plot(b, min(r["learning_rates"]) * 2 * b / b[0], color="0.6", ls=":",
          label="α ∝ B (linear scaling)")
  ax.set_xscale("log", base=2)
  ax.set_yscale("log", base=2)
  ax.set_ylim(min(r["learning_rates"]) / 1.5, max(r["learning_rates"]) * 1.5)
  ax.set_xlabel("batch size B")
  ax.set_ylabel("tuned learning rate α")
  ax.set_title(f"(c) tuned α per batch size (grid {min(r['learning_rates']):g} … "
               f"{max(r['learning_rates']):g});\ndashed: fitted B_crit", fontsize=10)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, loc="lower right")

  fig.suptitle(f"Critical batch size (McCandlish et al. 2018): {r['dataset_description']}; "
               f"{r['model']}\n{r['optimizer']}; {len(r['seeds'])} seed(s), learning rate tuned "
               f"per batch size over {len(r['learning_rates'])} values ({r['config']['name']} "
               "mode)", fontsize=10)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
