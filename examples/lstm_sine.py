"""
An LSTM that continues a sine wave
==================================

Windows of a noisy sine wave, an ``nn.LSTM`` with a linear read-out trained to predict the
next value, and then a free-running forecast: the network's own predictions are fed back in.
The plot shows the training loss and the forecast against the true continuation.

    python examples/lstm_sine.py [--fast] [--out lstm_sine.png]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import chainrule as cr
from chainrule import nn, optim


class Forecaster(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):
        out, state = self.lstm(x, state)
        return self.head(out), state


def windows(series: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(len(series) - length)[:, None] + np.arange(length)
    return series[idx][..., None], series[idx + 1][..., None]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="an LSTM on a sine wave")
    p.add_argument("--fast", action="store_true", help="fewer epochs, a smaller network")
    p.add_argument("--out", default="lstm_sine.png")
    args = p.parse_args(argv)
    epochs, hidden = (15, 16) if args.fast else (150, 32)

    rng = np.random.default_rng(0)
    t = np.arange(400) * 0.1
    series = np.sin(t) + 0.05 * rng.normal(size=t.shape)
    X, Y = windows(series[:300], 40)
    model = Forecaster(hidden)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for xb, yb in cr.data.DataLoader(X, Y, batch_size=64, shuffle=True, seed=epoch):
            opt.zero_grad()
            pred, _ = model(cr.tensor(xb))
            loss = nn.functional.mse_loss(pred, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        losses.append(total / len(X))
    print(f"final training loss {losses[-1]:.5f}")

    # Free-running forecast: warm up on the last window, then feed predictions back in.
    steps = 100
    with cr.no_grad():
        pred, state = model(cr.tensor(series[260:300].reshape(1, -1, 1)))
        value = pred.numpy()[:, -1:, :]
        forecast = []
        for _ in range(steps):
            forecast.append(float(value[0, 0, 0]))
            out, state = model(cr.tensor(value), state)
            value = out.numpy()
    truth = np.sin(t[300:300 + steps])
    error = float(np.sqrt(np.mean((np.array(forecast) - truth) ** 2)))
    print(f"forecast RMS error over {steps} steps: {error:.3f}")

    import matplotlib

    matplotlib.use("Agg")  # files only: the examples need no screen
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.semilogy(range(1, epochs + 1), losses)
    left.set_xlabel("epoch")
    left.set_ylabel("training MSE")
    right.plot(t[200:300], series[200:300], color="0.6", label="observed")
    right.plot(t[300:300 + steps], truth, "k--", label="true continuation")
    right.plot(t[300:300 + steps], forecast, color="C3", label="LSTM forecast")
    right.legend(loc="lower left")
    right.set_xlabel("t")
    fig.suptitle("Continuing a sine wave with an LSTM")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return {"loss": losses, "forecast_rms": error}


if __name__ == "__main__":
    main(sys.argv[1:])
