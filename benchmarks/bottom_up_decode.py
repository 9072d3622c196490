"""Bottom-up decoding speed: kpdet's batched decoders against a per-image CenterNet-style loop.

    OMP_NUM_THREADS=1 python benchmarks/bottom_up_decode.py [--threads 1] [--reps 30] [--batch 16]
                                                          [--against GIT_REV]

Baseline: benchmarks/reference_decode.py, a per-image PyTorch version of CenterNet's
`multi_pose_decode` (and of its NMS + top-k for points), with the snapping rule adapted to kpdet's
(that file's docstring says what was adapted), run in a Python loop over the images of the batch.
Both decode the same maps in the same run; before any timing the script asserts that they give the
same detections (keypoints within 1e-4 input px, the same kept instances, scores within 1e-6).

Cases (the shipped configs' sizes and decoding parameters):
- pose: configs/bottom_up/synthetic_*.yaml, input 320x256 -> 80x64 heatmaps, 17 keypoints + the
  centre map, offsets, displacements; max_instances 8, max_peaks 20, threshold 0.1, 3x3 kernel.
- points: configs/points/*.yaml, input 256x256 -> 64x64, 3 classes, offsets; max_peaks 128.
The maps look like a trained model's: Gaussian peaks (sigma 2 px) of several instances at random
heights, some keypoints occluded (no peak), distractor blobs, background noise, displacements that
miss their keypoint by ~1 px; fixed seed. Times are medians of `reps` interleaved runs.

A third column runs the same per-image loop with kpdet's suppression (kpdet.codecs.peaks
.local_maxima) in place of the max-pool: kpdet against it is what batching alone gains.

`--against REV` also times kpdet's decoders as they were at git revision REV (kpdet/codecs loaded
from `git archive REV`) and asserts that their outputs equal this tree's exactly (every slot,
kept or not): the check that a speed-up changed no output.
"""
from __future__ import annotations

import argparse
import atexit
import importlib
import io
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from reference_decode import per_image, points_one_image, pose_one_image  # noqa: E402

from kpdet.codecs import build_codec  # noqa: E402
from kpdet.codecs.instances import decode_points  # noqa: E402
from kpdet.codecs.offset import OffsetCodec  # noqa: E402
from kpdet.codecs.peaks import local_maxima  # noqa: E402
from kpdet.codecs.pose import decode_pose  # noqa: E402

STRIDE = 4
POSE = {"input": (320, 256), "K": 17, "decode": {"max_instances": 8, "threshold": 0.1, "kernel": 3,
                                                  "snap_fraction": 0.3, "max_peaks": 20}}
REFERENCE, SWAPPED = "CenterNet-style loop", "loop + kpdet NMS"
POINTS = {"input": (256, 256), "C": 3, "decode": {"max_peaks": 128, "threshold": 0.1, "kernel": 3}}


# --- maps like a trained model's ---------------------------------------------------------------
def gaussians(centres: torch.Tensor, heights: torch.Tensor, size, sigma: float = 2.0) -> torch.Tensor:
    """centres [..., M, 2] heatmap px, heights [..., M] -> the maximum of their Gaussians [..., H, W]."""
    W, H = size
    gx = torch.exp(-(torch.arange(W) - centres[..., 0:1]) ** 2 / (2 * sigma**2))  # [..., M, W]
    gy = torch.exp(-(torch.arange(H) - centres[..., 1:2]) ** 2 / (2 * sigma**2))  # [..., M, H]
    blobs = heights[..., None, None] * gy[..., :, None] * gx[..., None, :]
    return blobs.amax(-3) if blobs.shape[-3] else blobs.new_zeros(*blobs.shape[:-3], H, W)


def noisy(heat: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Background a sigmoid head leaves: small positive noise everywhere, clipped to [0, 1]."""
    return (heat + 0.05 * torch.rand(heat.shape, generator=g)).clamp(0, 1)


def pose_maps(batch: int, g: torch.Generator):
    """-> (scores [B, K + 1, H, W], offsets [B, K + 1, 2, H, W], displacements [B, K, 2, H, W]):
    2-6 figures per image, each a centre plus K keypoints within ~12 px of it."""
    W, H = (s // STRIDE for s in POSE["input"])
    K = POSE["K"]
    scores = torch.zeros(batch, K + 1, H, W)
    displacements = 3.0 * torch.randn(batch, K, 2, H, W, generator=g)
    for b in range(batch):
        M = int(torch.randint(2, 7, (1,), generator=g))
        centres = torch.rand(M, 2, generator=g) * torch.tensor([W - 24.0, H - 24.0]) + 12
        keypoints = centres[:, None] + 12 * (torch.rand(M, K, 2, generator=g) - 0.5) * 2
        shown = (torch.rand(M, K, generator=g) > 0.15).float()  # occluded: no peak to snap to
        heights = (0.3 + 0.65 * torch.rand(M, K, generator=g)) * shown
        distract = torch.rand(K, 2, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
        points = torch.cat([keypoints.transpose(0, 1), distract], 1)  # [K, M + 2, 2]
        levels = torch.cat([heights.t(), 0.15 + 0.3 * torch.rand(K, 2, generator=g)], 1)
        scores[b, :K] = gaussians(points, levels, (W, H))
        scores[b, K] = gaussians(centres, 0.4 + 0.55 * torch.rand(M, generator=g), (W, H))
        pixel = torch.floor(centres + 0.5).long()
        for m in range(M):  # the displacement head near each centre: the keypoint, missed by ~1 px
            x, y = pixel[m].tolist()
            d = keypoints[m] - pixel[m].float() + torch.randn(K, 2, generator=g)
            displacements[b, :, :, y - 1:y + 2, x - 1:x + 2] = d[..., None, None]
    offsets = torch.rand(batch, K + 1, 2, H, W, generator=g) - 0.5
    return noisy(scores, g), offsets, displacements


def points_maps(batch: int, g: torch.Generator):
    """-> (scores [B, C, H, W], offsets [B, C, 2, H, W]): 0-100 objects per image over C classes."""
    W, H = (s // STRIDE for s in POINTS["input"])
    C = POINTS["C"]
    scores = torch.zeros(batch, C, H, W)
    for b in range(batch):
        for c in range(C):
            M = int(torch.randint(0, 34, (1,), generator=g))
            centres = torch.rand(M, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
            scores[b, c] = gaussians(centres, 0.2 + 0.75 * torch.rand(M, generator=g), (W, H))
    offsets = torch.rand(batch, C, 2, H, W, generator=g) - 0.5
    return noisy(scores, g), offsets


# --- the two decoders ----------------------------------------------------------------------------
def codec(input_size):
    W, H = input_size
    heatmap = (W // STRIDE, H // STRIDE)
    return OffsetCodec(build_codec({"type": "msra", "sigma": 2.0}, input_size=(W, H), heatmap_size=heatmap))


def decoders_at(rev: str) -> dict:
    """kpdet's pose and points decoders as they were at git revision `rev`: kpdet/codecs from
    `git archive`, imported as a throwaway package (its __init__, which registers codecs, left out)."""
    archive = subprocess.run(["git", "archive", rev, "kpdet/codecs"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    root = Path(tempfile.mkdtemp(prefix="kpdet_rev_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    package = f"kpdet_codecs_at_{rev.replace('~', '_').replace('^', '_')}"
    (root / "kpdet" / "codecs").rename(root / package)
    (root / package / "__init__.py").write_text("")
    sys.path.insert(0, str(root))
    return {"pose": importlib.import_module(f"{package}.pose").decode_pose,
            "points": importlib.import_module(f"{package}.instances").decode_points}


def kpdet_suppression(heat: torch.Tensor, kernel: int) -> torch.Tensor:
    """kpdet's local maxima for one image [C, H, W] (the reference's step 1 swapped)."""
    return local_maxima(heat[None], kernel)[0]


def cases(batch: int, decoders: dict | None = None) -> dict:
    """-> {case: {"kpdet": batched call, REFERENCE: the per-image CenterNet-style loop, SWAPPED: that
    loop with kpdet's suppression (what batching alone gains)}} on fixed-seed maps."""
    decoders = decoders or {"pose": decode_pose, "points": decode_points}
    g = torch.Generator().manual_seed(0)
    scores, offsets, disp = pose_maps(batch, g)
    pose_codec, stride = codec(POSE["input"]), (float(STRIDE), float(STRIDE))
    pts_scores, pts_offsets = points_maps(batch, g)
    pts_codec = codec(POINTS["input"])

    pose = (scores, offsets, disp)
    points = (pts_scores, pts_offsets)

    def loop(decode, maps, params, **nms):
        return lambda: per_image(decode, *maps, stride=stride, **params, **nms)

    return {
        "pose": {"kpdet": lambda: decoders["pose"](pose_codec, *pose, **POSE["decode"]),
                 REFERENCE: loop(pose_one_image, pose, POSE["decode"]),
                 SWAPPED: loop(pose_one_image, pose, POSE["decode"], nms=kpdet_suppression)},
        "points": {"kpdet": lambda: decoders["points"](pts_codec, *points, **POINTS["decode"]),
                   REFERENCE: loop(points_one_image, points, POINTS["decode"]),
                   SWAPPED: loop(points_one_image, points, POINTS["decode"], nms=kpdet_suppression)},
    }


def assert_same(ours: dict, ref: dict, name: str) -> str:
    """Same kept detections: keep flags, instance scores, keypoint locations (1e-4 px) and scores."""
    assert torch.equal(ours["keep"], ref["keep"]), f"{name}: kept detections differ"
    keep = ours["keep"]
    location = "keypoints" if "keypoints" in ours else "points"
    for key in ("instance_scores", "scores"):
        if key in ours:
            torch.testing.assert_close(ours[key][keep], ref[key][keep], atol=1e-6, rtol=0,
                                       msg=f"{name}: {key}")
    torch.testing.assert_close(ours[location][keep], ref[location][keep], atol=1e-4, rtol=0,
                               msg=f"{name}: {location}")
    found = int(keep.sum())
    if location == "keypoints":
        return f"{found} instances, {found * ours['keypoints'].shape[2]} keypoints"
    return f"{found} points"


# --- timing and report ---------------------------------------------------------------------------
def median_ms(fns: dict, reps: int) -> dict:
    for fn in fns.values():  # warm-up
        fn()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(1e3 * (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in times.items()}


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line)
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}; torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--against", metavar="REV", help="also time kpdet/codecs at this git revision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = cases(args.batch)
    found = {name: assert_same(calls["kpdet"](), calls[REFERENCE](), name) for name, calls in runs.items()}
    for name, calls in runs.items():
        assert_same(calls["kpdet"](), calls[SWAPPED](), name)
    if args.against:
        for name, calls in cases(args.batch, decoders_at(args.against)).items():
            new, old = runs[name]["kpdet"](), calls["kpdet"]()
            assert all(torch.equal(new[key], old[key]) for key in new), \
                f"{name}: this tree's decoder and {args.against}'s give different outputs"
            runs[name][f"kpdet at {args.against}"] = calls["kpdet"]
    ms = median_ms({(name, who): fn for name, calls in runs.items() for who, fn in calls.items()}, args.reps)
    print(f"## Bottom-up decode, batch {args.batch} ({machine()})\n")
    print(table(ms, found))


def table(ms: dict, found: dict) -> str:
    """One row per case: ms per batch of each decoder, and how many times kpdet's is faster."""
    names = [who for case, who in ms if case == next(iter(found))]
    others = [who for who in names if who != "kpdet"]
    lines = ["| case | detections (identical) | " + " | ".join(f"{who} ms / batch" for who in names)
             + " | " + " | ".join(f"speed-up vs {who}" for who in others) + " |",
             "|---|---|" + "---:|" * (len(names) + len(others))]
    for case in found:
        times = " | ".join(f"{ms[case, who]:.2f}" for who in names)
        ratios = " | ".join(f"{ms[case, who] / ms[case, 'kpdet']:.1f}x" for who in others)
        lines.append(f"| {case} | {found[case]} | {times} | {ratios} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
