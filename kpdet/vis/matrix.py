"""A ground-distance matrix (squared EMD, model.attribute.ground_distance) as a picture."""
from __future__ import annotations

import numpy as np


def matrix_picture(matrix, labels=None, title: str = "ground distance") -> np.ndarray:
    """C x C matrix -> uint8 RGB [H, W, 3]: a heatmap (viridis, 0 = dark) with each value written in
    its cell; `labels` (C strings) name the rows and columns (default 0..C-1). matplotlib, Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=np.float64)
    C = matrix.shape[0]
    labels = [str(c) for c in range(C)] if labels is None else list(labels)
    figure, axes = plt.subplots(figsize=(1.2 + 0.7 * C, 1.0 + 0.7 * C), dpi=80)
    axes.imshow(matrix, cmap="viridis", vmin=0.0, vmax=max(float(matrix.max()), 1e-12))
    for i in range(C):
        for j in range(C):
            bright = matrix[i, j] > 0.6 * matrix.max()
            axes.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                      color="black" if bright else "white")
    axes.set_xticks(range(C), labels, rotation=90 if max(map(len, labels)) > 3 else 0)
    axes.set_yticks(range(C), labels)
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    picture = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return picture
