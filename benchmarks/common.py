"""Timing helpers and the result format shared by every workload of ``make bench``.

Fairness rules (applied identically to chainrule and to the NumPy baseline):

* every figure is the MEDIAN of ``repeats`` timed runs, measured with
  ``time.perf_counter`` after ``warmup`` untimed runs;
* the candidates are timed *interleaved* (A, B, A, B, ...) so that clock
  drift, thermal throttling or a noisy neighbour hit both sides alike;
* ``gc.collect()`` runs before every timed run (outside the timed region);
* the garbage collector stays enabled during the timed region for both sides
  (what a user sees), unless ``--gc-off`` sets :data:`GC_OFF`, which then
  disables it for both sides;
* very fast calls are repeated ``number`` times inside one timed run
  (calibrated once per candidate) and the time is divided by ``number``;
* the C allocator keeps the memory it was given (:func:`steady_malloc`,
  unless ``--malloc-default``), so that neither side pays page faults that
  depend on the order in which the workloads ran.

A workload module exposes ``run(repeats: int) -> dict`` returning::

    {"name": "W1", "title": "...",
     "rows": [row(...), ...],          # what the table shows
     "notes": ["...", ...],            # optional free text
     "details": {...}}                 # optional raw figures for the JSON file

or ``skipped(name, title, reason)`` when something it needs does not exist yet.
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

#: Disable the garbage collector inside timed regions (both sides alike); set by run.py.
GC_OFF = False

#: Shortest wall time of one timed run; faster calls are looped ``number`` times.
MIN_RUN_TIME = 0.02


def steady_malloc() -> bool:
    """Make glibc keep freed memory mapped (no trimming, no per-allocation ``mmap``).

    By default glibc returns freed memory to the system once the free space
    at the top of the heap crosses a threshold that it keeps moving, and
    serves large arrays with fresh ``mmap`` calls: whichever side of a
    comparison happens to allocate after such a release pays about one page
    fault per 4 KiB it touches (a millisecond per MLP step), so a ratio
    could swing by 30% with the order in which the workloads ran.  With
    this set, both sides reuse memory the process already has.  Returns
    ``False`` where it does not apply (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(
        libc.mallopt(m_trim_threshold, 2**30))


def _timed(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of ``fn`` over ``number`` calls, gc collected before."""
    gc.collect()
    was_enabled = gc.isenabled()
    if GC_OFF:
        gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
    finally:
        if was_enabled:
            gc.enable()
    return elapsed / number


def _calibrate(fn: Callable[[], Any], min_time: float) -> int:
    """How many calls make one timed run last at least ``min_time`` seconds."""
    t = _timed(fn, 1)
    if t >= min_time:
        return 1
    return max(1, min(100_000, int(min_time / max(t, 1e-9)) + 1))


def compare(
    candidates: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    min_time: float = MIN_RUN_TIME,
) -> dict[str, dict[str, Any]]:
    """Time each callable ``repeats`` times, interleaved; seconds per call.

    Returns ``{name: {"median", "min", "max", "number", "repeats", "times"}}``
    (all in seconds per call).
    """
    repeats = max(1, int(repeats))
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    numbers = {name: _calibrate(fn, min_time) for name, fn in candidates.items()}
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(_timed(fn, numbers[name]))
    return {
        name: {
            "median": statistics.median(ts),
            "min": min(ts),
            "max": max(ts),
            "number": numbers[name],
            "repeats": repeats,
            "times": ts,
        }
        for name, ts in times.items()
    }


def row(
    measure: str,
    chainrule: float | None,
    baseline: float | None = None,
    *,
    unit: str = "",
    target: float | None = None,
    on: str = "ratio",
    note: str = "",
    peers: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One line of the table.

    ``chainrule`` and ``baseline`` are in ``unit``; ``ratio`` is
    chainrule / baseline.  ``target`` is an upper bound on the ratio
    (``on="ratio"``) or on the chainrule figure itself (``on="value"``);
    ``passed`` is ``None`` when there is no target.  ``peers`` maps other
    libraries (HIPS autograd, PyTorch) to their figure in ``unit``, timed in the
    same ``compare`` call.
    """
    ratio = None
    if chainrule is not None and baseline not in (None, 0):
        ratio = chainrule / baseline
    passed = None
    if target is not None:
        checked = ratio if on == "ratio" else chainrule
        passed = None if checked is None else bool(checked <= target)
    return {
        "measure": measure,
        "chainrule": None if chainrule is None else float(chainrule),
        "baseline": None if baseline is None else float(baseline),
        "unit": unit,
        "ratio": None if ratio is None else float(ratio),
        "target": None if target is None else float(target),
        "target_on": on,
        "passed": passed,
        "note": note,
        "peers": {k: float(v) for k, v in (peers or {}).items()},
        "peer_ratios": {k: float(v) / baseline for k, v in (peers or {}).items()
                        if baseline not in (None, 0)},
    }


def skipped(name: str, title: str, reason: str) -> dict[str, Any]:
    """The result of a workload that cannot run yet (a missing feature)."""
    return {"name": name, "title": title, "skipped": reason, "rows": [], "notes": [reason]}


def pick(result: Any, shape: tuple) -> Any:
    """The one array of ``shape`` inside a (possibly nested) tuple/list result.

    Transforms may return a bare array, a 1-tuple mirroring the primals, or
    ``(value, derivative)``; benchmarks only need the derivative.
    """
    import numpy as np

    if isinstance(result, (tuple, list)):
        found = [pick(r, shape) for r in result]
        found = [f for f in found if f is not None]
        if len(found) == 1:
            return found[0]
        return found[-1] if found else None
    arr = np.asarray(getattr(result, "data", result))
    return arr if arr.shape == tuple(shape) else None
