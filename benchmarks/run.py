"""Run the chainrule benchmarks (``make bench``) and print a table of results.

    .venv/bin/python benchmarks/run.py [--quick] [--only W1,W3] [--json PATH] [--gc-off]

Each workload module (``benchmarks/<module>.py``) exposes
``run(repeats: int) -> dict`` (format: see ``common.py``).  Every figure is
the median of ``repeats`` interleaved timed runs against a hand-written NumPy
baseline measured in the same process.  Targets are shown for information:
missing a target does not change the exit status; a workload that raises
(for example gradients that disagree with the baseline) makes it 1.
Results go to ``benchmarks/results/latest.json`` unless ``--json`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

# One BLAS thread unless the caller says otherwise: on a small shared machine, OpenBLAS
# threads that spin while other processes run make a 200x200 matmul 30x slower, and the
# baselines use the same BLAS, so the ratios stay fair. Must be set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

#: (name for --only, module in benchmarks/, what it measures)
WORKLOADS: list[tuple[str, str, str]] = [
    ("W1", "w1_chain", "eager overhead, scalar chain"),
    ("W1-anomaly", "w1_anomaly", "W1 with detect_anomaly() off / on"),
    ("W2", "w2_mlp", "MLP training step, float64 / float32"),
    ("W3", "w3_elementwise", "large elementwise expression"),
    ("MEM", "memory", "graph memory per op"),
    ("W4", "w4_jacobian", "jacfwd / jacrev"),
    ("W5", "w5_hvp", "Hessian-vector product"),
    ("WC", "compiled", "cr.compile: W1, W2, W3 compiled"),
    ("DASK", "dask_example", "Dask logistic regression step, 1 and 2 workers"),
    ("SP1", "sparse_scaling", "cr.sparse: sparse vs dense, scaling to 10^6, sparse Newton"),
    ("SP2", "sparse_asdex", "cr.sparse next to asdex (JAX): colours, time per Jacobian"),
    ("W6", "w6_cnn", "CNN training step vs hand NumPy and PyTorch (issue 19)"),
    ("W7", "w7_resnet", "two ResNet basic blocks, value and grad (issue 19)"),
    ("WF", "fft_power", "value_and_grad through cnp.fft.rfft, n = 2^20"),
    ("WV", "wv_vmap", "per-example gradients: vmap(grad) vs a loop of grad"),
    ("WCF", "wcf_control_flow", "cr.scan eager and compiled vs a Python-loop RNN"),
    # --- compiled variants (issue 5) -------------------------------------------------
    # Add compiled workloads here as ("W1c", "w1_chain_compiled", "..."), each module
    # exposing run(repeats) -> dict like the eager ones; they join --only automatically.
]

FULL_REPEATS = 21
QUICK_REPEATS = 5


def _ensure_path() -> None:
    """Make ``import common`` / ``import w1_chain`` work however run.py was started."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)


def _load(module: str):
    """The workload module, or ``None`` when its file does not exist (yet)."""
    _ensure_path()
    if not os.path.exists(os.path.join(HERE, module + ".py")):
        return None
    return importlib.import_module(module)


def _normalise(name: str, title: str, result: Any) -> dict:
    """Accept the documented format, or a flat dict of numbers (one row per key)."""
    if not isinstance(result, dict):
        raise TypeError(f"{name}: run() returned {type(result).__name__}, expected a dict")
    if "rows" in result:
        out = dict(result)
    else:
        from common import row

        rows = [
            row(str(k), float(v))
            for k, v in result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        out = {"rows": rows, "details": result}
    out.setdefault("name", name)
    out.setdefault("title", title)
    out.setdefault("notes", [])
    return out


def run_workload(name: str, module: str, title: str, repeats: int) -> dict:
    t0 = time.perf_counter()
    try:
        mod = _load(module)
        if mod is None:
            res = {"name": name, "title": title, "rows": [],
                   "skipped": f"benchmarks/{module}.py not present yet",
                   "notes": [f"benchmarks/{module}.py not present yet"]}
        else:
            res = _normalise(name, getattr(mod, "TITLE", title), mod.run(repeats))
    except Exception as exc:  # report and carry on with the other workloads
        res = {"name": name, "title": title, "rows": [],
               "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc(), "notes": []}
    res["wall_s"] = time.perf_counter() - t0
    return res


# --- table ------------------------------------------------------------------------------

def _num(v: float | None, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 100:
        s = f"{v:,.0f}"
    elif a >= 1:
        s = f"{v:.2f}" if a < 10 else f"{v:.1f}"
    else:
        s = f"{v:.3g}"
    return f"{s} {unit}".rstrip()


def _ratio(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}x" if v < 10 else f"{v:.1f}x"


def _target(r: dict) -> str:
    if r.get("target") is None:
        return ""
    if r.get("target_on") == "ratio":
        return f"ratio <= {r['target']:g}"
    return f"<= {r['target']:g} {r.get('unit', '')}".rstrip()


def _verdict(r: dict) -> str:
    p = r.get("passed")
    return "" if p is None else ("PASS" if p else "FAIL")


def _peers(r: dict) -> str:
    return "  ".join(f"{k} {_ratio(v)}" for k, v in sorted(r.get("peer_ratios", {}).items()))


def format_table(results: list[dict]) -> str:
    head = ("workload", "measure", "chainrule", "baseline", "ratio", "target", "result",
            "peers (ratio to baseline)")
    lines: list[tuple[str, ...] | str] = []
    for res in results:
        # skipped / failed workloads get one free-text line instead of table cells
        if res.get("error"):
            lines.append(f"{res['name']}: ERROR {res['error']}")
            continue
        if res.get("skipped"):
            lines.append(f"{res['name']}: SKIP ({res['skipped']})")
            continue
        for r in res["rows"]:
            unit = r.get("unit", "")
            ratio = r.get("ratio")
            lines.append((
                res["name"], r["measure"], _num(r.get("chainrule"), unit),
                _num(r.get("baseline"), unit), _ratio(ratio),
                _target(r), _verdict(r), _peers(r),
            ))
    cells = [line for line in lines if isinstance(line, tuple)]
    widths = [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(head)]

    def fmt(row_cells):
        parts = []
        for i, c in enumerate(row_cells):
            right = i in (2, 3, 4)
            parts.append(c.rjust(widths[i]) if right else c.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [fmt(head), fmt(tuple("-" * w for w in widths))]
    out += [fmt(line) if isinstance(line, tuple) else line for line in lines]
    return "\n".join(out)


# --- main -------------------------------------------------------------------------------

def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    try:
        return _jsonable(obj.tolist())  # NumPy scalars / arrays
    except AttributeError:
        return repr(obj)


def environment() -> dict:
    import numpy as np

    env = {"python": platform.python_version(), "numpy": np.__version__,
           "machine": platform.machine(), "platform": platform.platform(),
           "cpus": os.cpu_count()}
    try:
        import chainrule

        env["chainrule"] = getattr(chainrule, "__version__", "?")
    except Exception as exc:  # the workloads will report the details
        env["chainrule"] = f"import failed: {exc}"
    return env


def main(argv: list[str] | None = None) -> int:
    names = [w[0] for w in WORKLOADS]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_REPEATS} repeats instead of {FULL_REPEATS}")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per figure")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(names)}")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"),
                    help="where to write the results (default: benchmarks/results/latest.json)")
    ap.add_argument("--docs", default=None,
                    help="where to write the Markdown table and chart (default: "
                         "docs/benchmarks.md after a run of every workload; 'none' to skip)")
    ap.add_argument("--gc-off", action="store_true",
                    help="disable the garbage collector in timed regions (both sides alike)")
    ap.add_argument("--malloc-default", action="store_true",
                    help="leave glibc's allocator settings alone (see common.steady_malloc)")
    args = ap.parse_args(argv)

    _ensure_path()
    import common
    import report as report_mod

    common.GC_OFF = args.gc_off
    steady = False if args.malloc_default else common.steady_malloc()
    repeats = args.repeats or (QUICK_REPEATS if args.quick else FULL_REPEATS)
    wanted = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    unknown = wanted - {n.upper() for n in names}
    if unknown:
        ap.error(f"unknown workload(s) {sorted(unknown)}; choose from {names}")

    results = []
    for name, module, title in WORKLOADS:
        if wanted and name.upper() not in wanted:
            continue
        print(f"[{name}] {title} ...", file=sys.stderr, flush=True)
        res = run_workload(name, module, title, repeats)
        if res.get("error"):
            print(res["traceback"], file=sys.stderr)
        results.append(res)
        print(f"[{name}] done in {res['wall_s']:.1f} s", file=sys.stderr, flush=True)

    print()
    print(f"chainrule benchmarks: median of {repeats} runs"
          f"{', gc off in timed regions' if args.gc_off else ''}"
          f"{', allocator keeps freed memory' if steady else ''}")
    print(format_table(results))
    notes = [(r["name"], n) for r in results for n in r.get("notes", []) if not r.get("skipped")]
    if notes:
        print()
        for name, n in notes:
            print(f"  {name}: {n}")

    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "repeats": repeats,
        "quick": args.quick,
        "gc_off": args.gc_off,
        "steady_malloc": steady,
        "environment": environment(),
        "workloads": results,
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(_jsonable(report), fh, indent=1)
        print(f"\nwrote {args.json}")
    docs = args.docs if args.docs is not None else (None if wanted else report_mod.DOCS)
    if docs and docs != "none":
        print(f"wrote {report_mod.write(_jsonable(report), docs)}")
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
