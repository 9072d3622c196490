"""Persistent loader workers and exact resumption: per-sample seeds from (seed, epoch, index)."""
import torch

from kpdet.config import load_config
from kpdet.data.sampling import SeededSampler, SeedsPerSample, sample_seed
from kpdet.engine import builders, runner
from tests.conftest import data_overrides


def test_sampler_keeps_the_order_and_adds_a_seed_per_sample():
    data = list(range(10))
    plain = torch.utils.data.DistributedSampler(data, 1, 0, shuffle=True, seed=3)
    seeded = SeededSampler(data, 1, 0, shuffle=True, seed=3)
    plain.set_epoch(2)
    seeded.set_epoch(2)
    pairs = list(seeded)
    assert [i for i, _ in pairs] == list(plain)
    assert [s for _, s in pairs] == [sample_seed(3, 2, i) for i in list(plain)]
    assert len({sample_seed(3, e, i) for e in range(3) for i in range(10)}) == 30  # all different
    assert all(0 <= s < 2**63 for _, s in pairs)


def _first_batch(loader, epoch):
    runner._seed_epoch(0, epoch, loader)
    return next(iter(loader))["image"]


def test_persistent_workers_give_a_resumed_run_the_same_augmentations(tiny_synthetic):
    cfg = load_config("configs/smoke.yaml", [*data_overrides(tiny_synthetic), "data.aug.photometric=true"])
    dataset = builders.build_split(cfg, "train", train=True)
    running = builders.build_loader(dataset, 4, 1, True, 0, persistent_workers=True)
    assert isinstance(running.sampler, SeedsPerSample)
    _first_batch(running, 0)
    continued = _first_batch(running, 1)  # epoch 1 from workers that drew epoch 0 before
    resumed = _first_batch(builders.build_loader(dataset, 4, 1, True, 0, persistent_workers=True), 1)
    assert torch.equal(continued, resumed)
    # A mid-epoch resume (EpochSampler.skip) keeps each remaining sample's seed.
    skipping = builders.build_loader(dataset, 4, 1, True, 0, persistent_workers=True)
    runner._seed_epoch(0, 1, skipping, skip=4)
    second = next(iter(skipping))["image"]
    runner._seed_epoch(0, 1, running)
    batches = iter(running)
    next(batches)
    assert torch.equal(second, next(batches)["image"])
    # Fresh workers every epoch too: after a mid-epoch resume they would be dealt other batches.
    assert isinstance(builders.build_loader(dataset, 4, 1, True, 0, persistent_workers=False).sampler,
                      SeedsPerSample)
    # Without workers the loader keeps torch's generator (today's draws, reseeded every epoch).
    assert not isinstance(builders.build_loader(dataset, 4, 0, True, 0, persistent_workers=True).sampler,
                          SeedsPerSample)
