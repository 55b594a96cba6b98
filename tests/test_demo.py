"""``chainrule demo``: runs, reports the accuracy, writes the plot; defaults reach the targets."""

from __future__ import annotations

import argparse
import builtins
import re
import sys

import numpy as np
import pytest

from chainrule import demo
from chainrule.cli import main


def _args(tmp_path, **kw):
    base = dict(model="mlp", epochs=None, seed=0, out=tmp_path, batch_size=None, lr=None)
    base.update(kw)
    return argparse.Namespace(**base)


def _accuracy(text):
    line = [ln for ln in text.splitlines() if "accuracy" in ln][-1]
    return float(re.search(r"accuracy[^0-9]*([0-9.]+)", line).group(1))


def test_demo_runs_prints_accuracy_and_writes_a_plot(tmp_path, capsys):
    assert demo.run(_args(tmp_path, epochs=2)) == 0
    out = capsys.readouterr().out
    assert "epoch   1/2" in out and "epoch   2/2" in out
    last = out.strip().splitlines()[-1]
    assert "accuracy" in last and _accuracy(last) > 80
    png = tmp_path / "chainrule_demo_mlp.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"


def test_demo_cnn_through_the_command_line(tmp_path, capsys):
    assert main(["demo", "--model", "cnn", "--epochs", "1", "--out", str(tmp_path),
                 "--batch-size", "64", "--lr", "0.003"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out.strip().splitlines()[-1]
    assert (tmp_path / "chainrule_demo_cnn.png").exists()


def test_default_mlp_reaches_97_percent():
    history = demo.train("mlp", progress=False, log=lambda line: None)
    assert history["test_accuracy"][-1] >= 0.97
    assert len(history["loss"]) == demo.DEFAULTS["mlp"][0]
    assert history["loss"][-1] < history["loss"][0]


def test_default_cnn_reaches_98_percent():
    history = demo.train("cnn", progress=False, log=lambda line: None)
    assert history["test_accuracy"][-1] >= 0.98


def test_split_is_reproducible_and_disjoint():
    a = demo.load_split(seed=3)
    b = demo.load_split(seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_tr, y_tr, x_te, y_te = a
    assert len(x_tr) + len(x_te) == 1797 and len(x_te) == 359
    assert x_tr.max() <= 1.0 and x_tr.min() >= 0.0 and x_tr.dtype == np.float32
    assert not np.array_equal(demo.load_split(seed=4)[3], y_te)


def test_demo_without_matplotlib_or_tqdm_still_works(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] in ("matplotlib", "tqdm"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    for mod in [m for m in sys.modules if m.split(".")[0] in ("matplotlib", "tqdm")]:
        monkeypatch.delitem(sys.modules, mod)
    assert demo.run(_args(tmp_path, epochs=1)) == 0
    captured = capsys.readouterr()
    assert "matplotlib is not installed" in captured.out
    assert "accuracy" in captured.out.strip().splitlines()[-1]
    assert "[" in captured.err  # the plain progress bar
    assert not (tmp_path / "chainrule_demo_mlp.png").exists()


def test_bad_settings_give_an_error_code(tmp_path, capsys):
    assert demo.run(_args(tmp_path, epochs=1, lr=-1.0)) == 2
    assert "learning rate" in capsys.readouterr().err
    with pytest.raises(ValueError):
        demo.build_model("transformer")
