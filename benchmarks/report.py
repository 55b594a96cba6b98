"""Write ``docs/benchmarks.md`` (table + bar chart of the ratios) from a benchmark run.

    .venv/bin/python benchmarks/report.py [results.json] [--out docs/benchmarks.md]

``run.py`` calls :func:`write` after a full run.  The chart (``benchmarks.png`` next to
the Markdown file) needs matplotlib; without it the page says so and keeps the table.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(os.path.dirname(HERE), "docs", "benchmarks.md")


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    a = abs(v)
    s = f"{v:,.0f}" if a >= 100 else f"{v:.2f}" if a >= 1 else f"{v:.3g}"
    return f"{s} {unit}".rstrip()


def _ratio(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _rows(report: dict) -> list[tuple[str, dict]]:
    return [(w["name"], r) for w in report["workloads"] if not w.get("error")
            for r in w.get("rows", [])]


def _peer_names(report: dict) -> list[str]:
    return sorted({p for _, r in _rows(report) for p in r.get("peer_ratios", {})})


def table(report: dict) -> str:
    peers = _peer_names(report)
    head = ["workload", "measure", "chainrule", "baseline", "ratio", "target", "result"]
    head += [f"{p} (ratio)" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in _rows(report):
        unit = r.get("unit", "")
        target = ""
        if r.get("target") is not None:
            target = (f"≤ {r['target']:g}×" if r.get("target_on") == "ratio"
                      else f"≤ {r['target']:g} {unit}")
        verdict = {True: "pass", False: "miss", None: ""}[r.get("passed")]
        cells = [name, r["measure"], _fmt(r.get("chainrule"), unit),
                 _fmt(r.get("baseline"), unit), _ratio(r.get("ratio")), target, verdict]
        cells += [_ratio(r.get("peer_ratios", {}).get(p)) for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(report: dict, path: str) -> bool:
    """Bar chart of every ratio-to-baseline figure (chainrule and peers); False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return False
    rows = [(n, r) for n, r in _rows(report)
            if r.get("ratio") is not None and r.get("target_on") == "ratio"
            and "/" not in r["measure"]]
    if not rows:
        return False
    peers = _peer_names(report)
    series = ["chainrule"] + peers
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.5))
    for i, s in enumerate(series):
        vals = [r["ratio"] if s == "chainrule" else r.get("peer_ratios", {}).get(s, 0.0)
                for _, r in rows]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(xs, vals, width, label=s)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{n}\n{r['measure']}" for n, r in rows], fontsize=7, rotation=30,
                       ha="right")
    ax.set_ylabel("time (or memory) / hand-written NumPy")
    ax.set_title("chainrule and peers against hand-written NumPy (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(report: dict, path: str = DOCS) -> str:
    """Write the Markdown page (and its chart) for ``report``; returns the page's path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    png = os.path.splitext(path)[0] + ".png"
    have_chart = chart(report, png)
    env = report.get("environment", {})
    notes = [f"- {w['name']}: {n}" for w in report["workloads"] for n in w.get("notes", [])
             if not w.get("skipped")]
    parts = [
        "# chainrule benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run.py`); every figure is the median of "
        f"{report.get('repeats')} interleaved runs in one process, next to a hand-written "
        "NumPy baseline (ratio = chainrule / baseline, lower is better) and, when they are "
        "installed (`pip install -e '.[bench]'`), HIPS autograd and PyTorch timed in the "
        "same run (their ratios to the same baseline).",
        "",
        f"Run of {report.get('date', '?')} — Python {env.get('python', '?')}, NumPy "
        f"{env.get('numpy', '?')}, {env.get('cpus', '?')} CPUs, one BLAS thread.",
        "",
        table(report),
        "",
    ]
    if have_chart:
        parts += [f"![ratios to hand-written NumPy]({os.path.basename(png)})", ""]
    else:
        parts += ["(no chart: matplotlib is not installed)", ""]
    parts += ["## Notes", "", *notes, ""]
    with open(path, "w") as fh:
        fh.write("\n".join(parts))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="?", default=os.path.join(HERE, "results", "latest.json"))
    ap.add_argument("--out", default=DOCS)
    args = ap.parse_args(argv)
    with open(args.results) as fh:
        report: Any = json.load(fh)
    print("wrote", write(report, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
