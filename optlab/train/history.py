"""Reading a run's evaluations back from a fit history file (JSONL).

``fit(..., history_path=...)`` appends to one JSONL file (see :mod:`optlab.results`):

* ``{"kind": "run_start", "run": id, ...}`` when a run starts from scratch,
* ``{"kind": "evaluation", "run": id, "epoch": e, ...}`` after each evaluation,
* ``{"kind": "resume", "run": id, "from_epoch": k}`` when a run resumes from its
  checkpoint of epoch ``k - 1``.

The evaluation record of an epoch is written before that epoch's checkpoint, so a
run killed between the two redoes the epoch when resumed and writes its record
again. :func:`read_history` resolves this: per epoch, the last record written counts,
and records that a later ``resume`` (from an earlier epoch) or ``run_start`` (of the
same run id) superseded are dropped.
"""

from __future__ import annotations

import os
from typing import Any

from optlab import results


def read_history(path: str | os.PathLike, run: str | None = None) -> list[dict[str, Any]]:
  """The evaluation records of one run of a history file, one per epoch, in epoch order.

  Records are read in file order. For the chosen run:

  * a ``run_start`` record starts it afresh (earlier evaluations of that id are dropped),
  * a ``resume`` record with ``from_epoch = k`` drops its evaluations of epochs ≥ k
    (written after the checkpoint the run resumed from),
  * an ``evaluation`` record of epoch e replaces any earlier one of epoch e.

  Args:
    path: the history JSONL file written by ``fit(..., history_path=path)``.
    run: the run id (``run_name``, or the generated id in its ``run_start`` record);
      None: the run of the last evaluation record in the file.

  Returns:
    The run's evaluation records as written (``kind``, ``run``, ``epoch``, ``step``,
    ``train_loss``, metrics, ...), sorted by epoch, one per epoch. Non-finite values
    read back as None (JSON has no NaN).

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: the file holds no evaluation record, or none of run `run`.

  Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "history.jsonl"
    >>> results.append_records(path, [
    ...     {"kind": "run_start", "run": "a"},
    ...     {"kind": "evaluation", "run": "a", "epoch": 0, "val_loss": 0.9},
    ...     {"kind": "evaluation", "run": "a", "epoch": 1, "val_loss": 0.7},  # killed here
    ...     {"kind": "resume", "run": "a", "from_epoch": 1},
    ...     {"kind": "evaluation", "run": "a", "epoch": 1, "val_loss": 0.6}])
    >>> [(r["epoch"], r["val_loss"]) for r in read_history(path)]
    [(0, 0.9), (1, 0.6)]
  """
  records = results.read_records(path)
  evaluations = [r for r in records if r.get("kind") == "evaluation"]
  if not evaluations:
    raise ValueError(f"read_history: no evaluation records in {path}")
  if run is None:
    run = evaluations[-1].get("run")
  by_epoch: dict[int, dict[str, Any]] = {}
  for record in records:
    if record.get("run") != run:
      continue
    kind = record.get("kind")
    if kind == "run_start":
      by_epoch.clear()
    elif kind == "resume":
      start = record.get("from_epoch", 0)
      by_epoch = {e: r for e, r in by_epoch.items() if e < start}
    elif kind == "evaluation" and record.get("epoch") is not None:
      by_epoch[record["epoch"]] = record
  if not by_epoch:
    runs = sorted({str(r.get("run")) for r in evaluations})
    raise ValueError(f"read_history: no evaluation records of run {run!r} in {path}; "
                     f"runs there: {', '.join(runs)}")
  return [by_epoch[e] for e in sorted(by_epoch)]


__all__ = ["read_history"]
