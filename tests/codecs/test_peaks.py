"""Multi-peak decoding finds every planted instance and nothing else."""
import pytest
import torch
import torch.nn.functional as F

from kpdet.codecs import build_codec
from kpdet.codecs.peaks import encode_instances, local_maxima, window_max


def test_local_maxima_by_hand():
    s = torch.tensor([[[[0.1, 0.5, 0.2, 0.0, 0.3]]]])
    # 3-wide neighbourhoods: 0.5 beats 0.1 and 0.2; 0.3 beats 0.0; others are suppressed
    assert torch.equal(local_maxima(s), torch.tensor([[[[0.0, 0.5, 0.0, 0.0, 0.3]]]]))


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_window_max_is_max_pool(kernel):
    # the separable running maximum gives max_pool2d's values exactly, borders, ties and -inf included
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 4, (2, 3, 7, 9), generator=g).float()  # few levels: many ties
    s[0, 0, 0, 0], s[1, 2, 6, 8] = float("-inf"), 9.0
    want = F.max_pool2d(s, kernel, stride=1, padding=kernel // 2)
    assert torch.equal(window_max(s, kernel), want)
    # -inf off its window's maximum becomes -inf * 0 = nan in both (the old max_pool2d form)
    torch.testing.assert_close(local_maxima(s, kernel), s * (s == want), rtol=0, atol=0, equal_nan=True)


def test_window_max_rejects_an_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        window_max(torch.zeros(1, 1, 4, 4), 2)


def test_decode_peaks_finds_every_planted_peak():
    codec = build_codec({"type": "udp", "sigma": 1.5}, input_size=(256, 192), heatmap_size=(64, 48))
    g = torch.Generator().manual_seed(1)
    # instances on a coarse grid (>= 16 heatmap px apart) with sub-pixel jitter
    grid = torch.tensor([[x, y] for x in (8, 24, 40, 56) for y in (8, 24, 40)], dtype=torch.float32)
    u = grid + torch.rand(grid.shape, generator=g) - 0.5
    labels = torch.arange(len(grid)) % 3
    kp = codec.to_input(u)
    visible = torch.ones(len(grid))
    visible[5] = 0  # an invisible instance must not be found
    points = torch.stack([kp, kp.flip(0)])  # image 1: same points, other labels
    labs = torch.stack([labels, labels.flip(0) * 0])
    heat = encode_instances(codec, points, labs, torch.stack([visible, visible.flip(0)]), num_classes=3)
    assert heat.shape == (2, 3, 48, 64)
    found = codec.decode_peaks(heat, max_peaks=20, threshold=0.3)
    for b in range(2):
        keep = (torch.stack([visible, visible.flip(0)])[b] > 0)
        want = {(int(c), tuple(p)) for c, p in zip(labs[b][keep].tolist(), points[b][keep].tolist())}
        got = found[b]
        assert len(got["scores"]) == len(want)
        for c, p in want:
            match = (got["labels"] == c) & ((got["keypoints"] - torch.tensor(p)).norm(dim=-1) < 0.01)
            assert match.sum() == 1


def test_threshold_and_max_peaks():
    codec = build_codec({"type": "msra", "sigma": 1.0}, input_size=(32, 32), heatmap_size=(32, 32))
    s = torch.zeros(1, 1, 32, 32)
    s[0, 0, 5, 5], s[0, 0, 20, 20], s[0, 0, 10, 25] = 0.9, 0.5, 0.05
    out = codec.decode_peaks(s, max_peaks=5, threshold=0.1)[0]
    assert torch.equal(out["scores"], torch.tensor([0.9, 0.5]))
    assert out["keypoints"].tolist() == [[5, 5], [20, 20]]  # isolated pixels: no quarter shift
    assert codec.decode_peaks(s, max_peaks=1, threshold=0.1)[0]["scores"].numel() == 1
