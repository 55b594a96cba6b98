"""``chainrule demo``: train a small network on the bundled 8x8 digits.

The 1,797 images are scaled to [0, 1] and split 80/20 into training and
test sets with the seed; an MLP (64-256-10, ReLU) or a small CNN (two 3x3
convolutions with max pooling) is trained with Adam (cosine learning-rate
schedule) on softmax cross-entropy with label smoothing 0.1.  Each epoch
prints the training loss and test accuracy; the last line reports the test
accuracy, and a PNG plot of loss and accuracy is written to ``--out`` (when
matplotlib is installed).

>>> from chainrule.demo import train
>>> history = train("mlp", epochs=1, progress=False, log=lambda line: None)
>>> sorted(history)
['loss', 'seconds', 'test_accuracy', 'train_accuracy']
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import nn
from .core.trace import no_grad
from .data import DataLoader
from .datasets import load_digits
from .nn import functional as F
from .optim import Adam
from .optim.lr_scheduler import CosineAnnealingLR

__all__ = ["run", "train", "build_model", "load_split", "DEFAULTS"]

#: Default (epochs, batch size, learning rate) per model.
DEFAULTS = {"mlp": (30, 32, 2e-3), "cnn": (15, 32, 3e-3)}
LABEL_SMOOTHING = 0.1
TEST_FRACTION = 0.2


def load_split(seed: int = 0, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, ...]:
    """Digits as float32 in [0, 1], split reproducibly: ``(x_train, y_train, x_test, y_test)``."""
    images, labels = load_digits()
    x = (images.astype(np.float32) / 16.0).reshape(len(images), 8, 8)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, tr = order[:n_test], order[n_test:]
    return x[tr], labels[tr].astype(np.int64), x[test], labels[test].astype(np.int64)


def build_model(name: str) -> nn.Module:
    """The demo networks (float32): ``"mlp"`` or ``"cnn"``."""
    f32 = np.float32
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 256, dtype=f32), nn.ReLU(),
                             nn.Linear(256, 10, dtype=f32))
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, dtype=f32), nn.ReLU(), nn.MaxPool2d(2),   # 16x4x4
            nn.Conv2d(16, 32, 3, padding=1, dtype=f32), nn.ReLU(), nn.MaxPool2d(2),  # 32x2x2
            nn.Flatten(), nn.Linear(128, 64, dtype=f32), nn.ReLU(), nn.Linear(64, 10, dtype=f32),
        )
    raise ValueError(f"demo: unknown model {name!r}; choose 'mlp' or 'cnn'")


def _inputs(name: str, x: np.ndarray) -> np.ndarray:
    return x[:, None, :, :] if name == "cnn" else x


def _accuracy(model: nn.Module, name: str, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with no_grad():
        logits = np.asarray(model(_inputs(name, x)))
    model.train()
    return float(np.mean(np.argmax(logits, axis=1) == y))


class _Bar:
    """tqdm when installed, else a plain text bar on stderr."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, 0
        self.tqdm = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.tqdm = tqdm(total=total, desc=desc, unit="batch", leave=False)
            except ImportError:
                self.tqdm = None

    def update(self, loss: float) -> None:
        self.n += 1
        if self.tqdm is not None:
            self.tqdm.update(1)
            if self.n % 10 == 0 or self.n == self.total:
                self.tqdm.set_postfix(loss=f"{loss:.4f}", refresh=False)
        elif self.enabled and (self.n % max(1, self.total // 20) == 0 or self.n == self.total):
            done = int(30 * self.n / self.total)
            sys.stderr.write(f"\r{self.desc} [{'#' * done}{'.' * (30 - done)}] "
                             f"{self.n}/{self.total} loss {loss:.4f}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
        elif self.enabled:
            sys.stderr.write("\r" + " " * (len(self.desc) + 60) + "\r")
            sys.stderr.flush()


def _one_blas_thread():
    """Run with one BLAS thread when threadpoolctl is installed: the demo's matrices are
    small, and on a busy machine BLAS threads that spin waiting for each other make every
    product many times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def train(name: str = "mlp", epochs: int | None = None, batch_size: int | None = None,
          lr: float | None = None, seed: int = 0, progress: bool = True,
          log: Any = None) -> dict[str, list[float]]:
    """Train a demo model; returns the per-epoch history (loss, accuracies, seconds).

    ``log(line)`` receives one line per epoch (default: print).
    """
    d_epochs, d_bs, d_lr = DEFAULTS.get(name, DEFAULTS["mlp"])
    epochs = d_epochs if epochs is None else int(epochs)
    batch_size = d_bs if batch_size is None else int(batch_size)
    lr = d_lr if lr is None else float(lr)
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"demo: epochs ({epochs}) and batch size ({batch_size}) must be at least"
                         f" 1 and the learning rate ({lr}) positive")
    log = print if log is None else log
    with _one_blas_thread():
        return _train(name, epochs, batch_size, lr, seed, progress, log)


def _train(name: str, epochs: int, batch_size: int, lr: float, seed: int, progress: bool,
           log: Any) -> dict[str, list[float]]:
    x_tr, y_tr, x_te, y_te = load_split(seed)
    nn.manual_seed(seed)
    model = build_model(name)
    opt = Adam(model.parameters(), lr=lr)
    schedule = CosineAnnealingLR(opt, T_max=epochs)
    loader = DataLoader(_inputs(name, x_tr), y_tr, batch_size=batch_size, shuffle=True,
                        seed=seed)
    history: dict[str, list[float]] = {"loss": [], "train_accuracy": [], "test_accuracy": [],
                                       "seconds": []}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        bar = _Bar(len(loader), f"epoch {epoch}/{epochs}", progress)
        total, count, correct = 0.0, 0, 0
        for xb, yb in loader:
            opt.zero_grad()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=LABEL_SMOOTHING)
            loss.backward()
            opt.step()
            # Report the plain cross-entropy (the objective adds label smoothing).
            raw_logits = np.asarray(logits.detach())
            value = float(F.cross_entropy(raw_logits, yb))
            total += value * len(yb)
            count += len(yb)
            correct += int(np.sum(np.argmax(raw_logits, axis=1) == yb))
            bar.update(value)
        bar.close()
        schedule.step()
        test_acc = _accuracy(model, name, _inputs(name, x_te), y_te)
        history["loss"].append(total / count)
        history["train_accuracy"].append(correct / count)
        history["test_accuracy"].append(test_acc)
        history["seconds"].append(time.perf_counter() - start)
        log(f"epoch {epoch:3d}/{epochs}  loss {total / count:.4f}  "
            f"train accuracy {correct / count:.4f}  test accuracy {test_acc:.4f}")
    return history


def plot(history: dict[str, list[float]], path: Path, title: str) -> Path | None:
    """Write the loss/accuracy figure to ``path``; ``None`` when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, history["loss"], marker="o")
    ax1.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="loss")
    ax1.set_yscale("log")
    ax2.plot(epochs, history["train_accuracy"], marker="o", label="train")
    ax2.plot(epochs, history["test_accuracy"], marker="o", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(args: Any = None) -> int:
    """Entry point of ``chainrule demo``: train, print the accuracy, write the plot; exit code."""
    name = getattr(args, "model", None) or "mlp"
    seed = getattr(args, "seed", None)
    seed = 0 if seed is None else int(seed)
    out = Path(getattr(args, "out", None) or ".")
    progress = not getattr(args, "no_progress", False)
    d_epochs, d_bs, d_lr = DEFAULTS.get(name, DEFAULTS["mlp"])
    epochs = getattr(args, "epochs", None) or d_epochs
    batch_size = getattr(args, "batch_size", None) or d_bs
    lr = getattr(args, "lr", None) or d_lr
    print(f"chainrule demo: {name.upper()} on the 8x8 digits (1797 images, 80/20 split, "
          f"seed {seed}): Adam lr={lr} (cosine schedule), batch size {batch_size}, "
          f"{epochs} epochs")
    try:
        history = train(name, epochs, batch_size, lr, seed, progress=progress)
    except ValueError as exc:
        print(f"chainrule demo: {exc}", file=sys.stderr)
        return 2
    acc = history["test_accuracy"][-1]
    n_test = int(round(TEST_FRACTION * len(load_digits()[1])))
    path = plot(history, out / f"chainrule_demo_{name}.png",
                f"chainrule demo: {name.upper()} on digits (test accuracy {acc:.2%})")
    if path is None:
        print("matplotlib is not installed: no plot written (pip install matplotlib)")
    else:
        print(f"plot written to {path}")
    print(f"training took {history['seconds'][-1]:.1f} s")
    print(f"test accuracy: {100 * acc:.2f}% ({int(round(acc * n_test))}/{n_test} correct)")
    return 0
