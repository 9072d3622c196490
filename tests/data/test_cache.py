"""data.cache=ram: decoded once, the same samples as decoding every time, a clear error when too big."""
import numpy as np
import pytest
import torch

from kpdet.data import TopDownDataset
from kpdet.data import cache as C
from kpdet.data.coco import DatasetError
from tests.data.test_dataset import _ann, write_fixture


def _fixture(tmp_path):
    rng = np.random.default_rng(1)
    anns = [_ann(i, 1 + i % 3, [(rng.uniform(55, 95), rng.uniform(40, 80), 2) for _ in range(3)],
                 [50.0, 30.0, 50.0, 60.0]) for i in range(1, 7)]
    return write_fixture(tmp_path, anns)


@pytest.mark.parametrize("augment_on", ["loader", "device"])
def test_cached_and_uncached_samples_are_identical(tmp_path, augment_on):
    ann_file, img_dir = _fixture(tmp_path)
    kwargs = dict(train=True, photometric=True, rotation_prob=0.8, augment_on=augment_on)
    plain = TopDownDataset(ann_file, img_dir, (48, 64), cache="none", **kwargs)
    cached = TopDownDataset(ann_file, img_dir, (48, 64), cache="ram", **kwargs)
    assert plain.image_cache is None and cached.image_cache.nbytes == 3 * 160 * 120 * 3  # 3 images
    for index in range(len(plain)):
        torch.manual_seed(index)
        a = plain[index]
        torch.manual_seed(index)
        b = cached[index]
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


def test_images_are_views_of_one_buffer_decoded_once_per_process(tmp_path):
    ann_file, img_dir = _fixture(tmp_path)
    first = TopDownDataset(ann_file, img_dir, (48, 64), train=False, cache="ram")
    second = TopDownDataset(ann_file, img_dir, (48, 64), train=False, cache="ram")
    assert second.image_cache is first.image_cache  # a study worker's next run reuses it
    image = first.image_cache.get(2)
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    assert np.shares_memory(image, first.image_cache.buffer)  # no per-read copy
    assert not image.flags.writeable  # a write would copy the page in a forked worker


def test_too_large_for_the_available_memory_is_a_clear_error(tmp_path, monkeypatch):
    ann_file, img_dir = _fixture(tmp_path)
    monkeypatch.setattr(C, "available_memory", lambda: 200_000)
    # 3 images of 160 x 120 x 3 = 172,800 bytes > 50 % of 200,000
    with pytest.raises(C.CacheError, match=r"3 decoded images of .*ann\.json need 0\.00 GiB.*0\.00 GiB"
                                           r".*data\.cache=none"):
        TopDownDataset(ann_file, img_dir, (48, 64), train=False, cache="ram")
    C.check_fits(172_800, 3, "x", available=400_000)  # fits in half of 400,000


def test_error_message_names_sizes_in_gib():
    with pytest.raises(C.CacheError, match=r"need 3\.00 GiB, more than 50% of the 4\.00 GiB"):
        C.check_fits(3 * 2**30, 10, "train.json", available=4 * 2**30)


def test_available_memory_is_read_from_the_system():
    assert 0 < C.available_memory() < 2**50


def test_unreadable_image_keeps_the_skip_invalid_behaviour(tmp_path):
    ann_file, img_dir = _fixture(tmp_path)
    (img_dir / "0002.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot decode image 2"):
        TopDownDataset(ann_file, img_dir, (48, 64), train=False, cache="ram")[0]  # annotation 1: image 2
    skipping = TopDownDataset(ann_file, img_dir, (48, 64), train=False, cache="ram", skip_invalid=True)
    assert int(skipping[0]["image_id"]) == 3  # the next readable sample
