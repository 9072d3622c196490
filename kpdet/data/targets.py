"""Heatmap targets rendered in the data workers (the alternative to rendering them on the device)."""
from __future__ import annotations

import torch


class WithHeatmapTargets(torch.utils.data.Dataset):
    """Adds "heatmaps" [K, h, w] (or the ordinal codec's (x, y) targets) and "weights" [K] to each
    sample of `dataset` with `codec.encode`.

    The codec is the same batched one the training step would use on the device,
    called here with a batch of one, so both ways give the same targets.
    """

    def __init__(self, dataset, codec):
        self.dataset = dataset
        self.codec = codec

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.dataset[index]
        heatmaps, weights = self.codec.encode(sample["keypoints"][None], sample["visible"][None])
        # ordinal codecs give a (x, y) pair of targets: unbatch each
        first = tuple(t[0] for t in heatmaps) if isinstance(heatmaps, tuple) else heatmaps[0]
        return {**sample, "heatmaps": first, "weights": weights[0]}

    def __getattr__(self, name: str):
        # spec, coco, category_id, ... of the wrapped dataset
        if name in ("dataset", "codec"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
