"""Per-sample seeds that make loader workers resumable exactly.

A DataLoader with persistent workers seeds each worker once, when it starts, so the
augmentation of epoch e depends on everything the worker drew before: a run resumed
at epoch e (fresh workers) would see other augmentations than the uninterrupted run.
Fresh workers per epoch have the same problem after a mid-epoch resume: the batches
left are dealt to the workers from the first one again, so each draws other samples
from its stream than it did in the uninterrupted run.
`SeededSampler` instead hands the dataset (index, seed) pairs, with the seed a
function of (seed, epoch, index) alone (numpy's SeedSequence, so nearby triples give
unrelated streams), whatever worker draws the sample and whatever it drew before.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import DistributedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for sample `index` of `epoch` in a run of `seed`."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)


class SeedsPerSample:
    """Mixin for a DistributedSampler subclass (same order, shards and padding): yields
    (index, sample_seed(seed, epoch, index)) pairs; `set_epoch(epoch)` as usual. For datasets
    whose `seeded_index` attribute is true."""

    def __iter__(self):
        for index in super().__iter__():
            yield index, sample_seed(self.seed, self.epoch, index)


class SeededSampler(SeedsPerSample, DistributedSampler):
    """A DistributedSampler with per-sample seeds."""
