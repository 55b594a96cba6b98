"""W1 with ``cr.detect_anomaly()`` off: the mode must cost nothing when it is not on.

The W1 chain (see ``w1_chain.py``) is timed as usual and again after
entering and leaving anomaly mode (which swaps checking versions of the
primitive call and the backward rules in and out), in the same interleaved
run; the ratio should be 1 within noise.  The chain with the mode on is
reported too, for information (it walks the stack once per operation).
"""

from __future__ import annotations

import chainrule as cr
from common import compare, row
from w1_chain import N_OPS, N_STEPS, chain_chainrule

NAME = "W1-anomaly"
TITLE = "W1 with detect_anomaly() off (after on/off) and on"
TARGET_RATIO_OFF = 1.1


def chain_after_toggle(n: int = N_STEPS):
    with cr.detect_anomaly():
        pass
    return chain_chainrule(n)


def chain_with_anomaly_on(n: int = N_STEPS // 10):
    with cr.detect_anomaly():
        return chain_chainrule(n)


def run(repeats: int) -> dict:
    t = compare({"plain": chain_chainrule, "toggled": chain_after_toggle}, repeats)
    on = compare({"on": chain_with_anomaly_on}, max(1, repeats // 4))
    us = {k: v["median"] / N_OPS * 1e6 for k, v in t.items()}
    us_on = on["on"]["median"] / (N_OPS // 10) * 1e6
    return {
        "name": NAME,
        "title": TITLE,
        "rows": [
            row("W1 fwd+bwd per op, anomaly mode off", us["toggled"], us["plain"], unit="us/op",
                target=TARGET_RATIO_OFF, note="baseline: plain W1 in the same run"),
            row("W1 fwd+bwd per op, anomaly mode on", us_on, us["plain"], unit="us/op",
                note="for information: debugging mode"),
        ],
        "notes": ["off: entering and leaving the mode swaps the checks out again"],
        "details": {"timings_s": {**t, **on}},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(5)["rows"], indent=2))
