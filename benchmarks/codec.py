"""Codec precision and speed against a per-sample numpy transcription of MMPose 1.x.

    python benchmarks/codec.py [--threads 2] [--reps 15] [--device cpu|cuda] [--quick]

Reference: MMPose 1.x `codecs/utils/gaussian_heatmap.py` (generate_gaussian_heatmaps,
generate_unbiased_gaussian_heatmaps, generate_udp_gaussian_heatmaps) and
`codecs/utils/post_processing.py` / `refinement.py` (get_heatmap_maximum, gaussian_blur,
refine_keypoints, refine_keypoints_dark, refine_keypoints_dark_udp), transcribed below and
run one sample at a time as MMPose's data pipeline and decoder do. UDP is transcribed with
scale (input - 1) / (heatmap - 1) both ways. "outer" is the least work any renderer does:
two 1-D Gaussian factors and their outer product. Times are medians of `reps` runs,
interleaved; ratios come from this one run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kpdet.codecs import build_codec  # noqa: E402

INPUT, HEATMAP, SIGMA = (192, 256), (48, 64), 2.0


# --- MMPose transcription (numpy, one sample [K, 2] at a time) -----------------------------
def ref_encode(kp, vis, mode, sigma=SIGMA, size=HEATMAP):
    """mode: msra | dark | udp; kp already in heatmap px. -> heatmaps [K, H, W], weights [K]."""
    W, H = size
    K = kp.shape[0]
    heatmaps, weights = np.zeros((K, H, W), np.float32), vis.astype(np.float32).copy()
    radius = sigma * 3
    x = np.arange(0, W, dtype=np.float32)
    y = np.arange(0, H, dtype=np.float32)[:, None]
    size_g = int(2 * radius + 1)
    gx = np.arange(0, size_g, dtype=np.float32)
    gy = gx[:, None]
    for k in range(K):
        if vis[k] < 0.5:
            continue
        mu = (kp[k] + 0.5).astype(np.int64) if mode != "dark" else kp[k]
        left, top = mu - radius
        right, bottom = mu + radius + 1
        if left >= W or top >= H or right < 0 or bottom < 0:
            weights[k] = 0
            continue
        if mode == "dark":  # unbiased: whole map, no truncation
            g = np.exp(-((x - mu[0]) ** 2 + (y - mu[1]) ** 2) / (2 * sigma**2))
            heatmaps[k] = np.maximum(g, heatmaps[k])
            continue
        x0 = y0 = size_g // 2
        if mode == "udp":
            x0, y0 = x0 + kp[k, 0] - mu[0], y0 + kp[k, 1] - mu[1]
        g = np.exp(-((gx - x0) ** 2 + (gy - y0) ** 2) / (2 * sigma**2))
        left, top, right, bottom = int(left), int(top), int(right), int(bottom)
        g_x1, g_x2 = max(0, -left), min(W, right) - left
        g_y1, g_y2 = max(0, -top), min(H, bottom) - top
        region = heatmaps[k, max(0, top):min(H, bottom), max(0, left):min(W, right)]
        np.maximum(region, g[g_y1:g_y2, g_x1:g_x2], out=region)
    return heatmaps, weights


def ref_argmax(hm):
    K, H, W = hm.shape
    flat = hm.reshape(K, -1)
    y, x = np.unravel_index(np.argmax(flat, axis=1), (H, W))
    locs = np.stack((x, y), axis=-1).astype(np.float32)
    vals = np.amax(flat, axis=1)
    locs[vals <= 0] = -1
    return locs, vals


def ref_blur(hm, kernel=11):
    border = (kernel - 1) // 2
    K, H, W = hm.shape
    for k in range(K):
        origin_max = np.max(hm[k])
        dr = np.zeros((H + 2 * border, W + 2 * border), dtype=np.float32)
        dr[border:-border, border:-border] = hm[k].copy()
        dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
        hm[k] = dr[border:-border, border:-border].copy()
        hm[k] *= origin_max / np.max(hm[k])
    return hm


def ref_refine_quarter(locs, hm):
    K, H, W = hm.shape
    for k in range(K):
        px, py = int(locs[k, 0]), int(locs[k, 1])
        if 1 < px < W - 1 and 1 < py < H - 1:
            diff = np.array([hm[k, py, px + 1] - hm[k, py, px - 1], hm[k, py + 1, px] - hm[k, py - 1, px]])
            locs[k] += np.sign(diff) * 0.25
    return locs


def ref_refine_dark(locs, hm, kernel=11):
    K, H, W = hm.shape
    hm = np.log(np.maximum(ref_blur(hm.copy(), kernel), 1e-10))
    for k in range(K):
        x, y = locs[k].astype(int)
        if 1 < x < W - 2 and 1 < y < H - 2:
            h = hm[k]
            dx, dy = 0.5 * (h[y, x + 1] - h[y, x - 1]), 0.5 * (h[y + 1, x] - h[y - 1, x])
            dxx = 0.25 * (h[y, x + 2] - 2 * h[y, x] + h[y, x - 2])
            dxy = 0.25 * (h[y + 1, x + 1] - h[y - 1, x + 1] - h[y + 1, x - 1] + h[y - 1, x - 1])
            dyy = 0.25 * (h[y + 2, x] - 2 * h[y, x] + h[y - 2, x])
            if dxx * dyy - dxy**2 != 0:
                hess = np.array([[dxx, dxy], [dxy, dyy]])
                locs[k] += -np.linalg.inv(hess) @ np.array([dx, dy])
    return locs


def ref_refine_dark_udp(locs, hm, kernel=11):
    K, H, W = hm.shape
    hm = np.log(np.clip(ref_blur(hm.copy(), kernel), 1e-3, 50.0))
    pad = np.pad(hm, ((0, 0), (1, 1), (1, 1)), mode="edge").flatten()
    index = (locs[:, 0] + 1 + (locs[:, 1] + 1) * (W + 2) + (W + 2) * (H + 2) * np.arange(K)).astype(int)
    i_, ix1, iy1 = pad[index], pad[index + 1], pad[index + W + 2]
    ix1y1, ix1_y1_, ix1_, iy1_ = pad[index + W + 3], pad[index - W - 3], pad[index - 1], pad[index - 2 - W]
    dx, dy = 0.5 * (ix1 - ix1_), 0.5 * (iy1 - iy1_)
    dxx, dyy = ix1 - 2 * i_ + ix1_, iy1 - 2 * i_ + iy1_
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    hess = np.stack([dxx, dxy, dxy, dyy], 1).reshape(K, 2, 2) + np.finfo(np.float32).eps * np.eye(2)
    return locs - np.einsum("kmn,kn->km", np.linalg.inv(hess), np.stack([dx, dy], 1))


def ref_decode(hm, mode):
    locs, vals = ref_argmax(hm)
    refine = {"msra": ref_refine_quarter, "dark": ref_refine_dark, "udp": ref_refine_dark_udp}[mode]
    return refine(locs, hm), vals


def ref_loop(fn, batch, *args):
    return [fn(*(a[i] for a in batch), *args) for i in range(len(batch[0]))]


# --- ours and the outer-product floor ------------------------------------------------------
def outer_product(centres, sigma, size):
    W, H = size
    xs = torch.arange(W, dtype=torch.float32, device=centres.device)
    ys = torch.arange(H, dtype=torch.float32, device=centres.device)
    gx = torch.exp(-((xs - centres[..., :1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((ys - centres[..., 1:]) ** 2) / (2 * sigma**2))
    return gy[..., :, None] * gx[..., None, :]


def codec(name, **params):
    return build_codec({"type": name, "sigma": SIGMA, **params}, input_size=INPUT, heatmap_size=HEATMAP)


def median_ms(fns: dict, reps: int, sync) -> dict:
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times[k].append(1e3 * (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in times.items()}


# --- precision -----------------------------------------------------------------------------
def border_distance(u, size):
    """Distance [N] in heatmap px from points u [N, 2] to the nearest map edge (pixel centres)."""
    W, H = size
    return np.minimum(np.minimum(u[:, 0], W - 1 - u[:, 0]), np.minimum(u[:, 1], H - 1 - u[:, 1]))


BANDS = {"interior (>= 6)": (6, 1e9), "border band [1, 6)": (1, 6), "edge [0, 1)": (0, 1)}


def band_means(err, dist):
    return [float(err[(dist >= lo) & (dist < hi)].mean()) for lo, hi in BANDS.values()]


def precision_rows(n=10_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(n // 16, 16, 2, generator=g) * torch.tensor([INPUT[0] - 1.0, INPUT[1] - 1.0])
    vis = torch.ones(kp.shape[:2])
    rows = []
    for mode in ("msra", "dark", "udp"):
        c = codec(mode)
        u = c.to_heatmap(kp)
        dist = border_distance(u.reshape(-1, 2).numpy(), HEATMAP)
        ours = (c.decode(c.encode(kp, vis)[0])[0] - kp).norm(dim=-1).reshape(-1).numpy()
        hms = [h for h, _ in ref_loop(ref_encode, (u.numpy(), vis.numpy()), mode)]
        locs = np.stack([ref_decode(h, mode)[0] for h in hms])
        ref = np.linalg.norm(c.to_input(torch.from_numpy(locs)).numpy() - kp.numpy(), axis=-1).reshape(-1)
        rows.append((f"kpdet {mode}", band_means(ours, dist)))
        rows.append((f"MMPose {mode} (transcribed)", band_means(ref, dist)))
    return rows


def one_positive_rows(n=10_000, seed=1):
    """What one exact 1.0 per keypoint (for distance_aware_focal) costs the round trip."""
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(n // 16, 16, 2, generator=g) * torch.tensor([INPUT[0] - 1.0, INPUT[1] - 1.0])
    vis = torch.ones(kp.shape[:2])
    rows = []
    for mode in ("dark", "udp"):
        plain, scaled = codec(mode), codec(mode, one_positive="scale")
        dist = border_distance(plain.to_heatmap(kp).reshape(-1, 2).numpy(), HEATMAP)
        hm = plain.encode(kp, vis)[0]
        set_one = codec(mode, one_positive=True).encode(kp, vis)[0]  # the contract: only that pixel
        variants = (("plain", plain, hm), ("one_positive (scaled)", scaled, scaled.encode(kp, vis)[0]),
                    ("one_positive=true: nearest pixel set to 1.0", plain, set_one))
        for label, c, h in variants:
            err = (c.decode(h)[0] - kp).norm(dim=-1).reshape(-1).numpy()
            rows.append((f"{mode}: {label}", band_means(err, dist)))
    return rows


# --- speed ---------------------------------------------------------------------------------
def speed_rows(reps, device, B=64, K=17):
    g = torch.Generator().manual_seed(2)
    kp = (torch.rand(B, K, 2, generator=g) * torch.tensor([INPUT[0] - 1.0, INPUT[1] - 1.0])).to(device)
    vis = torch.ones(B, K, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    codecs = {m: codec(m) for m in ("msra", "dark", "udp")}
    fns = {f"encode {m}": (lambda c=c: c.encode(kp, vis)) for m, c in codecs.items()}
    buffer = torch.empty(B, K, HEATMAP[1], HEATMAP[0], device=device)
    fns["encode dark into a reused buffer"] = lambda: codecs["dark"].encode(kp, vis, out=buffer)
    centres = codecs["dark"].to_heatmap(kp)
    fns["encode outer product"] = lambda: outer_product(centres, SIGMA, HEATMAP)
    heat = {m: c.encode(kp, vis)[0] for m, c in codecs.items()}
    fns.update({f"decode {m}": (lambda c=c, h=heat[m]: c.decode(h)) for m, c in codecs.items()})
    if device == "cpu":
        u = {m: c.to_heatmap(kp).numpy() for m, c in codecs.items()}
        v = vis.numpy()
        fns.update({f"loop encode {m}": (lambda m=m: ref_loop(ref_encode, (u[m], v), m)) for m in codecs})
        hn = {m: h.numpy() for m, h in heat.items()}
        fns.update({f"loop decode {m}": (lambda m=m: [ref_decode(h, m) for h in hn[m]]) for m in codecs})
    for fn in fns.values():  # warm-up
        fn()
    return median_ms(fns, reps, sync)


def denormal_counts(B=64, K=17):
    kp = torch.rand(B, K, 2) * torch.tensor([INPUT[0] - 1.0, INPUT[1] - 1.0])
    tiny = np.finfo(np.float32).tiny
    out = {}
    for m in ("msra", "dark", "udp"):
        c = codec(m)
        ours = c.encode(kp, torch.ones(B, K))[0].numpy()
        ref = np.stack([h for h, _ in ref_loop(ref_encode, (c.to_heatmap(kp).numpy(), np.ones((B, K))), m)])
        out[m] = (int(((ours > 0) & (ours < tiny)).sum()), int(((ref > 0) & (ref < tiny)).sum()))
    return out


# --- report --------------------------------------------------------------------------------
def band_table(title, rows):
    lines = [f"### {title}", "", "| codec | " + " | ".join(BANDS) + " |", "|---|" + "---:|" * len(BANDS)]
    lines += [f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals) + " |" for name, vals in rows]
    return "\n".join(lines + [""])


def speed_table(ms, device):
    lines = [f"### Speed, batch 64 x 17, heatmap 48x64 ({device})", "",
             "| operation | ms | vs per-sample loop | vs outer product |", "|---|---:|---:|---:|"]
    for name, t in ms.items():
        if name.startswith("loop"):
            continue
        loop = ms.get(f"loop {name}", ms.get("loop encode dark") if "buffer" in name else None)
        vs_loop = f"{loop / t:.1f}x faster" if loop else ""
        vs_outer = f"{t / ms['encode outer product']:.2f}x" if name.startswith("encode") else ""
        lines.append(f"| kpdet {name} | {t:.3f} | {vs_loop} | {vs_outer} |")
    lines += [f"| MMPose {name[5:]} per-sample loop (transcribed) | {t:.2f} | | |"
              for name, t in ms.items() if name.startswith("loop")]
    return "\n".join(lines + [""])


def machine(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU, {torch.get_num_threads()} torch threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="1,600 keypoints for precision, 5 reps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    n, reps = (1_600, 5) if args.quick else (10_000, args.reps)
    print(f"## Heatmap codecs ({machine(args.device)}; torch {torch.__version__})\n")
    if args.device == "cpu":
        title = f"Round-trip error, mean input px, {n} random keypoints, 192x256 -> 48x64, sigma 2"
        print(band_table(title, precision_rows(n)))
        print(band_table("Cost of one positive per keypoint (distance_aware_focal targets), mean input px",
                         one_positive_rows(n)))
        counts = denormal_counts()
        print("Denormal values in one 64 x 17 batch (kpdet / MMPose transcription): "
              + ", ".join(f"{m} {a} / {b}" for m, (a, b) in counts.items()) + "\n")
    print(speed_table(speed_rows(reps, args.device), machine(args.device)))


if __name__ == "__main__":
    main()
