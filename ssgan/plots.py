"""Pictures a researcher looks at in the MLflow UI: sample grids and test-set diagnostics."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on training machines

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def image_grid(images: np.ndarray, rows: int = 8, cols: int = 8, pad: int = 2) -> np.ndarray:
    """Tile uint8 images (N, H, W, C) into one (rows*H, cols*W, C) picture, row-major."""
    count, height, width, channels = images.shape
    grid = np.full(
        (rows * (height + pad) + pad, cols * (width + pad) + pad, channels), 255, np.uint8
    )
    for index in range(min(count, rows * cols)):
        r, c = divmod(index, cols)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[top : top + height, left : left + width] = images[index]
    return grid


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts[i, j] = images of true class i predicted as class j."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return counts


def per_class_accuracy(counts: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix (NaN for a class with no images)."""
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(counts) / totals


def confusion_figure(counts: np.ndarray, title: str = "test set") -> Figure:
    """Row-normalised confusion matrix with counts, digits on both axes."""
    num_classes = counts.shape[0]
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    shown = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(num_classes):
        for j in range(num_classes):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(num_classes))
    ax.set_yticks(range(num_classes))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"Confusion matrix ({title})")
    fig.colorbar(shown, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    return fig


def per_class_figure(accuracy: np.ndarray, title: str = "test set") -> Figure:
    """Bar chart of per-class accuracy with the mean as a line."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    digits = np.arange(len(accuracy))
    ax.bar(digits, np.nan_to_num(accuracy), color="#4c72b0")
    ax.axhline(np.nanmean(accuracy), color="#dd8452", linestyle="--", label="mean")
    ax.set_xticks(digits)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("digit")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Per-class accuracy ({title})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
