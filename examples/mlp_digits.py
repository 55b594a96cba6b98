"""
A multilayer perceptron on the bundled digits
=============================================

The 1,797 8x8 handwritten digits that ship with chainrule, a two-layer perceptron from
``cr.nn``, Adam and a ``DataLoader``: PyTorch's training loop, on NumPy arrays. The plot shows
the training loss and the test accuracy per epoch.

    python examples/mlp_digits.py [--fast] [--out mlp_digits.png]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import chainrule as cr
from chainrule import nn, optim


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="an MLP on the bundled digits")
    p.add_argument("--fast", action="store_true", help="3 epochs instead of 30")
    p.add_argument("--out", default="mlp_digits.png")
    args = p.parse_args(argv)
    epochs = 3 if args.fast else 30

    images, labels = cr.datasets.load_digits()
    X = images.reshape(len(images), -1) / 16.0
    order = np.random.default_rng(0).permutation(len(X))
    test, train = order[:360], order[360:]
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=3e-3)
    losses, accuracies = [], []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        batches = cr.data.DataLoader(X[train], labels[train], batch_size=64, shuffle=True,
                                     seed=epoch)
        for xb, yb in batches:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(cr.tensor(xb)), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        losses.append(total / len(train))
        model.eval()
        with cr.no_grad():
            predicted = np.argmax(model(cr.tensor(X[test])).numpy(), axis=1)
        accuracies.append(float(np.mean(predicted == labels[test])))
        print(f"epoch {epoch + 1:2d}: loss {losses[-1]:.4f}, test accuracy {accuracies[-1]:.4f}")

    import matplotlib

    matplotlib.use("Agg")  # files only: the examples need no screen
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(range(1, epochs + 1), losses, marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training cross-entropy")
    right.plot(range(1, epochs + 1), accuracies, marker="o", color="C2")
    right.set_xlabel("epoch")
    right.set_ylabel("test accuracy")
    fig.suptitle("64-128-10 perceptron on the 8x8 digits")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return {"loss": losses, "accuracy": accuracies}


if __name__ == "__main__":
    main(sys.argv[1:])
