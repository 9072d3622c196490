"""TensorBoard and console output. Keys by role (`loss/total`, `val/AP`) so runs overlay."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class TensorBoardLogger:
    """Thin wrapper over SummaryWriter; `enabled=False` (non-zero DDP ranks) makes every call a no-op."""

    def __init__(self, log_dir: str | Path, enabled: bool = True):
        self.log_dir = Path(log_dir)
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(prefix + key, value, step)

    def image(self, tag: str, step: int, picture: np.ndarray) -> None:
        """picture: uint8 [H, W, 3] RGB."""
        if self.writer is not None:
            self.writer.add_image(tag, picture, step, dataformats="HWC")

    def hparams(self, params: dict, metrics: dict[str, float]) -> None:
        """One HParams-tab entry (params: str/int/float/bool values) under log_dir/hparams."""
        if self.writer is not None:
            self.writer.add_hparams(params, metrics, run_name="hparams")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
