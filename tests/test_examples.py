"""Every script in examples/ runs in its fast mode and writes its plot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Examples with tests of their own results (fast mode included) elsewhere.
TESTED_ELSEWHERE = {"cnn_digits", "sparse_pde_jacobian", "heat_inverse_fft"}
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py")
                 if not p.name.startswith("_") and p.stem not in TESTED_ELSEWHERE)
# What a script needs beyond the default install, by its name.
NEEDS = {"dask_": ("dask", "distributed")}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs_fast_and_plots(script: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for prefix, modules in NEEDS.items():
        if script.name.startswith(prefix):
            for module in modules:
                pytest.importorskip(module)
    out = tmp_path / f"{script.stem}.png"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(script), "--fast", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    assert out.exists() and out.stat().st_size > 1000, f"{script.name} wrote no plot"


def test_there_are_at_least_four_examples() -> None:
    assert len(SCRIPTS) >= 4
