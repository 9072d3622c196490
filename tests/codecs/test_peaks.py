"""Multi-peak decoding finds every planted instance and nothing else."""
import torch

from kpdet.codecs import build_codec
from kpdet.codecs.peaks import encode_instances, local_maxima


def test_local_maxima_by_hand():
    s = torch.tensor([[[[0.1, 0.5, 0.2, 0.0, 0.3]]]])
    # 3-wide neighbourhoods: 0.5 beats 0.1 and 0.2; 0.3 beats 0.0; others are suppressed
    assert torch.equal(local_maxima(s), torch.tensor([[[[0.0, 0.5, 0.0, 0.0, 0.3]]]]))


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
