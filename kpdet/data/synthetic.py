"""Embedded synthetic COCO-keypoints dataset: articulated figures on cluttered backgrounds.

Each image (about 320x240, sizes vary) holds 1-4 figures with the 17 COCO person keypoints,
drawn as bodies with volume (shaded limbs, torso, shoes, a head with eyes, nose and ears at
their keypoints) over a textured background with low-contrast clutter and distractor shapes
(limb-like bars, bent bars, discs). Figures mostly face the camera, so the person's left side
is on the viewer's right; a small share faces away (no face; nose and eyes then get v=1).

Conventions (COCO):
- pixel centres at integer coordinates: a keypoint at (x, y) is drawn centred on pixel (x, y);
- v=2 visible, v=1 inside the image but behind a figure (or occluder) drawn later,
  v=0 outside the image, stored as (0, 0, 0);
- bbox [x, y, w, h] is the extent of the figure's drawn pixels (occluded parts included),
  clipped to the image; area is its pixel count.
- occlusion_bin (a per-instance ordinal attribute, for model.attribute): how many of the 17
  keypoints are not visible (v < 2: hidden or outside the image), binned 0 | 1-2 | 3-5 | 6+
  -> class 0 | 1 | 2 | 3 (`occlusion_bin`). It is computed from v alone, draws no random
  number, so the images and keypoints are those of a generator without it.

Every image comes from its own seed derived from (seed, split, index), so the output does not
depend on the number of worker processes.
"""
from __future__ import annotations

import bisect
import colorsys
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from kpdet.keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON

SPLITS = ("train", "val")
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
_SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn with 1/16 px precision
_ONE = 1 << _SHIFT
_OCCLUDER_ID = 255  # label of foreground objects in the owner map
OCCLUSION_BIN_EDGES = (1, 3, 6)  # not-visible keypoint counts where classes 1, 2, 3 start

# Keypoint indices (COCO order).
(NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SH, R_SH, L_EL, R_EL,
 L_WR, R_WR, L_HIP, R_HIP, L_KN, R_KN, L_AN, R_AN) = range(17)

# Body proportions as fractions of the standing height H (top of head to ankles).
_LENGTHS = {"torso": 0.30, "neck": 0.125, "head_r": 0.066, "shoulder": 0.115, "hip": 0.082,
            "upper_arm": 0.165, "forearm": 0.145, "thigh": 0.235, "shin": 0.235}
# Limb widths (fraction of H) at the proximal and distal joint.
_WIDTHS = {"upper_arm": (0.052, 0.044), "forearm": (0.044, 0.034), "thigh": (0.080, 0.058),
           "shin": (0.058, 0.042)}

# Arm modes: (outward angle from torso-down in degrees, elbow bend range, upper/forearm foreshortening).
_ARM_MODES = {
    "down": ((5, 30), (-25, 15), (0.9, 1.0)),
    "front": ((0, 40), (-40, 40), (0.4, 0.75)),
    "hip": ((25, 55), (-140, -95), (0.85, 1.0)),
    "out": ((60, 110), (-30, 60), (0.85, 1.0)),
    "raised": ((100, 175), (-50, 40), (0.85, 1.0)),
}
# Leg modes: (outward thigh angle from image-down, absolute shin angle offset, thigh / shin foreshortening).
_LEG_MODES = {
    "stand": ((2, 12), (-5, 5), (0.95, 1.0), (0.95, 1.0)),
    "walk": ((-5, 10), (-12, 12), (0.7, 0.9), (0.85, 1.0)),
    "spread": ((12, 28), (-6, 6), (0.95, 1.0), (0.95, 1.0)),
    "crouch": ((45, 95), None, (0.45, 0.8), (0.75, 1.0)),
    "sit": ((0, 30), None, (0.2, 0.45), (0.85, 1.0)),
}
# Whole-body poses: probability, arm modes with weights, leg modes for (one leg, other leg).
_POSES = {
    "standing": (0.30, {"down": 0.7, "hip": 0.15, "front": 0.15}, ("stand", "stand")),
    "walking": (0.20, {"down": 0.6, "front": 0.4}, ("walk", "stand")),
    "arms_raised": (0.15, {"raised": 0.6, "out": 0.2, "down": 0.2}, ("stand", "spread")),
    "arms_out": (0.10, {"out": 0.6, "raised": 0.2, "down": 0.2}, ("spread", "spread")),
    "crouching": (0.13, {"down": 0.4, "front": 0.4, "out": 0.2}, ("crouch", "crouch")),
    "sitting": (0.12, {"down": 0.5, "front": 0.3, "hip": 0.2}, ("sit", "sit")),
}
_SKIN = ((224, 189, 160), (198, 150, 115), (160, 110, 75), (110, 75, 50), (240, 205, 180), (180, 135, 95))
_HAIR = ((30, 25, 20), (70, 45, 25), (120, 85, 45), (200, 170, 100), (15, 15, 15), (140, 60, 30))


# ----------------------------------------------------------------------------------------------
# Pose: 17 keypoints in image px plus what the renderer needs.
# ----------------------------------------------------------------------------------------------

def _u(rng, lo_hi) -> float:
    return float(rng.uniform(*lo_hi))


def _dir(angle_deg: float, down: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Unit vector at `angle_deg` from `down` towards `out` (0 = down, 90 = out, 180 = up)."""
    a = math.radians(angle_deg)
    return down * math.cos(a) + out * math.sin(a)


def _choose(rng, weights: dict) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _sample_pose(rng) -> dict:
    """Joint angles for both viewer sides (side 0 = viewer's left, 1 = viewer's right)."""
    names = list(_POSES)
    kind = names[int(rng.choice(len(names), p=[_POSES[n][0] for n in names]))]
    _, arm_weights, legs = _POSES[kind]
    arms = [_choose(rng, arm_weights) for _ in range(2)]
    if kind == "arms_raised" and "raised" not in arms:
        arms[int(rng.integers(2))] = "raised"
    leg_modes = list(legs) if rng.random() < 0.5 else list(legs[::-1])
    lean = float(rng.normal(0, 4)) if rng.random() > 0.2 else float(rng.choice([-1, 1]) * rng.uniform(10, 30))
    return {"kind": kind, "arms": arms, "legs": leg_modes, "lean": lean,
            "rotation": float(np.clip(rng.normal(0, 5), -15, 15)),
            "head_tilt": float(rng.normal(0, 8)), "yaw": float(rng.uniform(-0.35, 0.35)),
            "shoulder_tilt": float(rng.normal(0, 0.01)),
            "arm_params": [_arm_params(rng, m) for m in arms],
            "leg_params": _leg_params(rng, leg_modes)}


def _arm_params(rng, mode: str) -> tuple:
    angle, bend, fore = _ARM_MODES[mode]
    return _u(rng, angle), _u(rng, bend), _u(rng, fore), _u(rng, fore)


def _leg_params(rng, modes: list[str]) -> list[tuple]:
    """(thigh angle, shin angle (absolute, from image-down, outward positive), thigh fs, shin fs)."""
    params = []
    for mode in modes:
        angle, shin, thigh_fs, shin_fs = _LEG_MODES[mode]
        a = _u(rng, angle)
        s = a + _u(rng, shin) if shin is not None else _u(rng, (-15, 15))
        params.append((a, s, _u(rng, thigh_fs), _u(rng, shin_fs)))
    if modes[0] == modes[1] and modes[0] in ("crouch", "sit"):  # keep a crouch roughly symmetric
        a, s, t, h = params[0]
        params[1] = (a + float(rng.normal(0, 6)), s + float(rng.normal(0, 5)), t, h)
    return params


def _body_points(pose: dict, lengths: dict, facing: int) -> tuple[np.ndarray, dict]:
    """Keypoints [17, 2] in a body frame (origin mid-hip, y down, units of H) and head geometry.

    facing: +1 towards the camera (person's left on the viewer's right), -1 away.
    """
    kp = np.zeros((17, 2))
    lean = math.radians(pose["lean"])
    up = np.array([math.sin(lean), -math.cos(lean)])
    right = np.array([math.cos(lean), math.sin(lean)])
    mid_sh = up * lengths["torso"]
    side_idx = {+1: (L_SH, L_EL, L_WR, L_HIP, L_KN, L_AN), -1: (R_SH, R_EL, R_WR, R_HIP, R_KN, R_AN)}
    for viewer_side, sigma in ((0, -1), (1, 1)):
        sh, el, wr, hip, kn, an = side_idx[sigma * facing]
        out = right * sigma
        kp[sh] = mid_sh + out * lengths["shoulder"] + up * pose["shoulder_tilt"] * sigma
        ua, bend, fs_u, fs_f = pose["arm_params"][viewer_side]
        kp[el] = kp[sh] + _dir(ua, -up, out) * lengths["upper_arm"] * fs_u
        kp[wr] = kp[el] + _dir(ua + bend, -up, out) * lengths["forearm"] * fs_f
        th, sh_angle, fs_t, fs_s = pose["leg_params"][viewer_side]
        down, side = np.array([0.0, 1.0]), np.array([float(sigma), 0.0])
        kp[hip] = out * lengths["hip"]
        kp[kn] = kp[hip] + _dir(th, down, side) * lengths["thigh"] * fs_t
        kp[an] = kp[kn] + _dir(sh_angle, down, side) * lengths["shin"] * fs_s
    head_up = _rotate(up[None], pose["head_tilt"])[0]
    centre = mid_sh + head_up * lengths["neck"]
    r = lengths["head_r"]
    hy = -head_up  # head frame: hy points down the face, hx to the viewer's right
    hx = np.array([hy[1], -hy[0]])
    yaw = pose["yaw"]
    face = {NOSE: (yaw * 0.6, 0.22), L_EYE: (0.36 * facing + yaw * 0.45, -0.12),
            R_EYE: (-0.36 * facing + yaw * 0.45, -0.12), L_EAR: (0.92 * facing + yaw * 0.15, 0.0),
            R_EAR: (-0.92 * facing + yaw * 0.15, 0.0)}
    for k, (fx, fy) in face.items():
        kp[k] = centre + (hx * fx + hy * fy) * r
    return kp, {"centre": centre, "radius": r, "hx": hx, "hy": hy}


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ rot.T


def _sample_figure(rng, height_px: float, away_fraction: float) -> dict:
    """A figure in its own frame (mid-hip at the origin, image px): keypoints, head, sizes, colours."""
    lengths = {k: v * float(rng.uniform(0.93, 1.07)) for k, v in _LENGTHS.items()}
    facing = -1 if rng.random() < away_fraction else 1
    pose = _sample_pose(rng)
    kp, head = _body_points(pose, lengths, facing)
    rot = pose["rotation"]
    kp = _rotate(kp, rot) * height_px
    head = {"centre": _rotate(head["centre"][None], rot)[0] * height_px, "radius": head["radius"] * height_px,
            "hx": _rotate(head["hx"][None], rot)[0], "hy": _rotate(head["hy"][None], rot)[0]}
    return {"kp": kp, "head": head, "H": height_px, "facing": facing, "pose": pose["kind"],
            "build": float(rng.uniform(0.85, 1.25)), "colours": _figure_colours(rng)}


def _figure_colours(rng) -> dict:
    """Saturated clothing (unlike the muted clutter), a skin tone and hair, as BGR tuples."""
    shirt = _hsv(rng.uniform(0, 1), rng.uniform(0.5, 0.95), rng.uniform(0.45, 0.95))
    if rng.random() < 0.4:
        pants = _hsv(rng.uniform(0.55, 0.66), rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.6))  # jeans
    else:
        pants = _hsv(rng.uniform(0, 1), rng.uniform(0.35, 0.9), rng.uniform(0.25, 0.8))
    skin = tuple(int(np.clip(c + rng.normal(0, 8), 0, 255)) for c in _SKIN[int(rng.integers(len(_SKIN)))])
    hair = _HAIR[int(rng.integers(len(_HAIR)))]
    shoes = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.1, 0.35))
    return {"shirt": shirt, "pants": pants, "skin": skin[::-1], "hair": hair[::-1], "shoes": shoes,
            "long_sleeves": bool(rng.random() < 0.5), "shorts": bool(rng.random() < 0.25)}


def _hsv(h, s, v) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(float(h), float(s), float(v))
    return int(b * 255), int(g * 255), int(r * 255)


# ----------------------------------------------------------------------------------------------
# Drawing primitives: every shape goes to the image (anti-aliased, shaded) and optionally to a
# figure mask (hard edges), from which visibility, bbox and area are computed.
# ----------------------------------------------------------------------------------------------

def _fx(p) -> tuple[int, int]:
    """Image px (pixel centres at integers) -> cv2 fixed-point coordinates."""
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


def _scale(colour, factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * factor))) for c in colour)


def _poly(img, mask, points, colour):
    import cv2

    pts = np.array([_fx(p) for p in points], dtype=np.int32)
    cv2.fillConvexPoly(img, pts, colour, cv2.LINE_AA, _SHIFT)
    if mask is not None:
        cv2.fillConvexPoly(mask, pts, 1, cv2.LINE_8, _SHIFT)


def _disc(img, mask, centre, radius, colour):
    import cv2

    r = max(1, int(round(radius * _ONE)))
    cv2.circle(img, _fx(centre), r, colour, -1, cv2.LINE_AA, _SHIFT)
    if mask is not None:
        cv2.circle(mask, _fx(centre), r, 1, -1, cv2.LINE_8, _SHIFT)


def _ellipse(img, mask, centre, axes, x_axis, colour):
    """Filled ellipse with semi-axes (a, b) px, its first axis along the unit vector `x_axis`."""
    import cv2

    angle = math.degrees(math.atan2(x_axis[1], x_axis[0]))
    ax = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(img, _fx(centre), ax, angle, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)
    if mask is not None:
        cv2.ellipse(mask, _fx(centre), ax, angle, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)


def _capsule(img, mask, p0, p1, w0, w1, colour):
    """Tapered limb: widths w0 at p0 and w1 at p1 (px), rounded ends."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / max(1e-6, float(np.hypot(*d)))
    _poly(img, mask, [p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2], colour)
    _disc(img, mask, p0, w0 / 2, colour)
    _disc(img, mask, p1, w1 / 2, colour)


def _shaded_capsule(img, mask, p0, p1, w0, w1, colour, light):
    """A capsule with a dark rim and a highlight on the side facing `light` (unit vector): volume."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / max(1e-6, float(np.hypot(*d)))
    n = n if float(n @ light) >= 0 else -n
    _capsule(img, mask, p0, p1, w0, w1, _scale(colour, 0.68))
    off = n * 0.12 * (w0 + w1) / 2
    _capsule(img, None, p0 + off, p1 + off, w0 * 0.7, w1 * 0.7, colour)
    off = n * 0.22 * (w0 + w1) / 2
    _capsule(img, None, p0 + off, p1 + off, w0 * 0.25, w1 * 0.25, _scale(colour, 1.2))


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

def _draw_figure(img, fig: dict, light: np.ndarray) -> np.ndarray:
    """Draws one figure; returns its silhouette mask [H, W] uint8 (1 = drawn)."""
    mask = np.zeros(img.shape[:2], np.uint8)
    kp, c, big = fig["kp"], fig["colours"], fig["H"]
    s = lambda name, end: _WIDTHS[name][end] * big * fig["build"]
    vl, vr = (1, -1) if fig["facing"] == 1 else (-1, 1)  # viewer-left is the person's right if facing
    sides = {+1: (L_SH, L_EL, L_WR, L_HIP, L_KN, L_AN), -1: (R_SH, R_EL, R_WR, R_HIP, R_KN, R_AN)}
    for side in (vl, vr):
        _draw_leg(img, mask, kp, sides[side][3:], s, c, light, big)
    _draw_torso(img, mask, kp, sides[vl], sides[vr], s, c, light)
    for side in (vl, vr):
        _draw_arm(img, mask, kp, sides[side][:3], s, c, light, big)
    _draw_head(img, mask, kp, fig, light)
    return mask


def _draw_leg(img, mask, kp, idx, s, c, light, big):
    hip, knee, ankle = kp[idx[0]], kp[idx[1]], kp[idx[2]]
    shin_colour = c["skin"] if c["shorts"] else c["pants"]
    shin = ankle - knee
    toe = ankle + shin / max(1e-6, float(np.hypot(*shin))) * 0.02 * big
    _ellipse(img, mask, toe, (0.05 * big, 0.025 * big), np.array([1.0, 0.0]), c["shoes"])
    _shaded_capsule(img, mask, knee, ankle, s("shin", 0), s("shin", 1), shin_colour, light)
    _shaded_capsule(img, mask, hip, knee, s("thigh", 0), s("thigh", 1), c["pants"], light)
    _disc(img, None, knee, s("thigh", 1) * 0.18, _scale(c["pants"], 0.8))  # knee crease


def _draw_torso(img, mask, kp, left, right, s, c, light):
    """Shirt from the shoulders to the waist, trousers from the waist to the hips, a belt between."""
    sh_l, sh_r, hip_l, hip_r = kp[left[0]], kp[right[0]], kp[left[3]], kp[right[3]]
    across_sh = (sh_r - sh_l) / max(1e-6, float(np.hypot(*(sh_r - sh_l))))
    across_hip = (hip_r - hip_l) / max(1e-6, float(np.hypot(*(hip_r - hip_l))))
    a, t = s("upper_arm", 0) * 0.45, s("thigh", 0) * 0.5
    waist_l = hip_l + (sh_l - hip_l) * 0.22 - across_hip * t
    waist_r = hip_r + (sh_r - hip_r) * 0.22 + across_hip * t
    pelvis = [waist_l, waist_r, hip_r + across_hip * t, hip_r + (hip_r - sh_r) * 0.12,
              hip_l + (hip_l - sh_l) * 0.12, hip_l - across_hip * t]
    _poly(img, mask, pelvis, c["pants"])
    chest = [sh_l - across_sh * a, sh_r + across_sh * a, waist_r, waist_l]
    _poly(img, mask, chest, _scale(c["shirt"], 0.7))
    centre = np.mean(chest, axis=0)
    inner = [centre + (p - centre) * 0.78 + light * 0.06 * float(np.hypot(*(sh_r - sh_l))) for p in chest]
    _poly(img, None, inner, c["shirt"])
    _capsule(img, None, waist_l, waist_r, a * 0.5, a * 0.5, _scale(c["pants"], 0.45))  # belt


def _draw_arm(img, mask, kp, idx, s, c, light, big):
    shoulder, elbow, wrist = kp[idx[0]], kp[idx[1]], kp[idx[2]]
    fore = wrist - elbow
    hand = wrist + fore / max(1e-6, float(np.hypot(*fore))) * 0.025 * big
    _disc(img, mask, hand, 0.026 * big, _scale(c["skin"], 0.95))
    sleeve = c["shirt"] if c["long_sleeves"] else c["skin"]
    _shaded_capsule(img, mask, elbow, wrist, s("forearm", 0), s("forearm", 1), sleeve, light)
    _shaded_capsule(img, mask, shoulder, elbow, s("upper_arm", 0), s("upper_arm", 1), c["shirt"], light)
    _disc(img, None, elbow, s("upper_arm", 1) * 0.2, _scale(c["shirt"], 0.75))  # elbow crease


def _draw_head(img, mask, kp, fig, light):
    """Neck, ears, hair and face with eyes, nose and mouth placed at the face keypoints."""
    h, c = fig["head"], fig["colours"]
    r, centre, hx, hy = h["radius"], h["centre"], h["hx"], h["hy"]
    neck_base = (kp[L_SH] + kp[R_SH]) / 2
    _shaded_capsule(img, mask, neck_base, centre, r * 0.75, r * 0.7, _scale(c["skin"], 0.9), light)
    for ear in (L_EAR, R_EAR):
        _ellipse(img, mask, kp[ear], (r * 0.2, r * 0.3), hx, _scale(c["skin"], 0.85))
    if fig["facing"] == -1:  # back of the head: hair only
        _ellipse(img, mask, centre, (r * 0.95, r * 1.05), hx, c["hair"])
        shine = centre - hy * 0.2 * r + light * 0.2 * r
        _ellipse(img, None, shine, (r * 0.4, r * 0.45), hx, _scale(c["hair"], 1.5))
        return
    _ellipse(img, mask, centre - hy * 0.12 * r, (r * 1.0, r * 0.98), hx, c["hair"])
    _ellipse(img, mask, centre + hy * 0.1 * r, (r * 0.84, r * 0.92), hx, c["skin"])
    for eye in (L_EYE, R_EYE):
        _disc(img, None, kp[eye], r * 0.17, (235, 235, 235))
        _disc(img, None, kp[eye], r * 0.1, (40, 30, 25))
    _disc(img, None, kp[NOSE], r * 0.14, _scale(c["skin"], 0.72))
    mouth = kp[NOSE] + hy * 0.32 * r
    _capsule(img, None, mouth - hx * 0.22 * r, mouth + hx * 0.22 * r, r * 0.09, r * 0.09, (60, 50, 150))


# ----------------------------------------------------------------------------------------------
# Background, clutter, distractors
# ----------------------------------------------------------------------------------------------

def _muted(rng, v=(0.2, 0.85)) -> tuple[int, int, int]:
    """Low-saturation colours for the background, so bodies stand out from the clutter."""
    return _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.3), rng.uniform(*v))


def _background(rng, h: int, w: int) -> np.ndarray:
    """Gradient + low-frequency texture + half-transparent shapes and lines, uint8 BGR [h, w, 3]."""
    import cv2

    a = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx * math.cos(a) + yy * math.sin(a)) / (w + h)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    c0, c1 = np.array(_muted(rng), np.float32), np.array(_muted(rng), np.float32)
    img = c0 + t[..., None] * (c1 - c0)
    # Blotchy texture, mostly brightness with a little colour (strong colour is left to the bodies).
    grid = rng.normal(0, rng.uniform(6, 22), (int(rng.integers(3, 9)), int(rng.integers(4, 12)), 1))
    grid = grid + rng.normal(0, 4, grid.shape[:2] + (3,))
    img += cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.3:  # wallpaper-like stripes
        period, angle = rng.uniform(6, 30), rng.uniform(0, math.pi)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period
        img += (rng.uniform(4, 10) * np.sin(phase))[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    layer = img.copy()
    for _ in range(int(rng.integers(4, 15))):
        _clutter_shape(rng, layer, h, w)
    return cv2.addWeighted(img, 1 - (alpha := rng.uniform(0.3, 0.6)), layer, alpha, 0)


def _clutter_shape(rng, img, h, w):
    import cv2

    colour, kind = _muted(rng, (0.1, 0.95)), int(rng.integers(5))
    p = (int(rng.integers(-20, w + 20)), int(rng.integers(-20, h + 20)))
    if kind == 0:
        q = (p[0] + int(rng.integers(10, 140)), p[1] + int(rng.integers(10, 140)))
        cv2.rectangle(img, p, q, colour, -1)
    elif kind == 1:
        cv2.circle(img, p, int(rng.integers(5, 60)), colour, -1, cv2.LINE_AA)
    elif kind == 2:
        cv2.ellipse(img, p, (int(rng.integers(5, 80)), int(rng.integers(5, 40))), float(rng.uniform(0, 180)),
                    0, 360, colour, -1, cv2.LINE_AA)
    elif kind == 3:
        pts = np.array(p) + rng.integers(-60, 60, (int(rng.integers(3, 6)), 2))
        cv2.fillPoly(img, [pts.astype(np.int32)], colour, cv2.LINE_AA)
    else:
        q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p, q, colour, int(rng.integers(1, 4)), cv2.LINE_AA)


def _distractors(rng, img, light):
    """Shapes that are not figures: shaded limb-like bars, bent bars (arm-like) and discs."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 6))):
        colour = _hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.7), rng.uniform(0.25, 0.85))
        p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        kind = int(rng.integers(3))
        if kind == 2:
            _shaded_capsule(img, None, p0, p0 + 0.01, *(2 * [rng.uniform(8, 40)]), colour, light)
            continue
        width = rng.uniform(4, 18)
        for _ in range(kind + 1):  # one bar, or two joined like an arm
            p1 = p0 + _rotate(np.array([[0.0, rng.uniform(0.08, 0.3) * w]]), rng.uniform(0, 360))[0]
            _shaded_capsule(img, None, p0, p1, width, width * rng.uniform(0.6, 1.0), colour, light)
            p0 = p1


def _occluder(rng, img, owner):
    """A foreground pole or box in front of everything (its pixels hide keypoints: v=1)."""
    import cv2

    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    colour = _muted(rng, (0.2, 0.8))
    if rng.random() < 0.5:
        x = int(rng.integers(0, w))
        pts = [(x, 0), (x + int(rng.integers(6, 22)), h)]
    else:
        x, y = int(rng.integers(-40, w - 20)), int(rng.integers(h // 2, h - 15))
        pts = [(x, y), (x + int(rng.integers(60, 160)), h)]
    for target, value in ((img, colour), (mask, 1)):
        cv2.rectangle(target, pts[0], pts[1], value, -1)
    owner[mask > 0] = _OCCLUDER_ID


# ----------------------------------------------------------------------------------------------
# One image: placement, occlusion, annotations
# ----------------------------------------------------------------------------------------------

def _figure_heights(rng, count: int) -> list[float]:
    """Standing heights (px), ascending: smaller figures are farther away and drawn first."""
    lo, hi = {1: (95, 230), 2: (75, 200), 3: (60, 175), 4: (55, 160)}[count]
    heights = np.exp(rng.uniform(math.log(lo), math.log(hi), count))
    tiny = rng.random(count) < 0.03  # a few far-away figures (boxes under ~40 px)
    heights[tiny] = rng.uniform(32, 55, int(tiny.sum()))
    return sorted(float(v) for v in heights)


def _place(rng, kp: np.ndarray, w: int, h: int, cut: bool) -> np.ndarray | None:
    """Offset (px) for a figure with keypoints kp [17, 2] (origin mid-hip): inside the image,
    or (cut=True) across one image border; None if no offset keeps >= 6 keypoints inside."""
    lo, hi = kp.min(0), kp.max(0)
    lo, hi = lo - (hi - lo) * 0.08, hi + (hi - lo) * 0.05  # head top and shoes
    size = np.array([w - 1, h - 1], float)
    for _ in range(12):
        off = np.array([rng.uniform(-lo[i], max(-lo[i], size[i] - hi[i])) for i in range(2)])
        if cut:  # a share u of the figure's extent inside, across the left/right (or top/bottom) border
            axis, end, u = int(rng.random() < 0.35), int(rng.integers(2)), rng.uniform(0.15, 0.7)
            span = hi[axis] - lo[axis]
            off[axis] = size[axis] - lo[axis] - u * span if end else u * span - hi[axis]
        inside = (kp + off >= 0).all(1) & (kp + off <= size).all(1)
        if inside.sum() >= 6:
            return off
    return None


def _annotation(kp: np.ndarray, mask: np.ndarray, owner: np.ndarray, fid: int, facing: int) -> dict:
    """COCO annotation (no ids yet) of a drawn figure with keypoints kp [17, 2] (image px)."""
    import cv2

    h, w = owner.shape
    kp = np.round(kp, 2)
    out = []
    for k, (x, y) in enumerate(kp):
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            out += [0, 0, 0]
            continue
        hidden = owner[int(round(y)), int(round(x))] > fid or (facing == -1 and k in (NOSE, L_EYE, R_EYE))
        out += [float(x), float(y), 1 if hidden else 2]
    bx, by, bw, bh = cv2.boundingRect(mask)
    return {"category_id": 1, "keypoints": out, "num_keypoints": sum(v > 0 for v in out[2::3]),
            "bbox": [float(bx), float(by), float(bw), float(bh)], "area": float(cv2.countNonZero(mask)),
            "iscrowd": 0, "occlusion_bin": occlusion_bin(sum(v < 2 for v in out[2::3]))}


def occlusion_bin(not_visible: int) -> int:
    """Class of a figure with `not_visible` keypoints of v < 2: 0 | 1-2 | 3-5 | 6+ -> 0 | 1 | 2 | 3."""
    return bisect.bisect_right(OCCLUSION_BIN_EDGES, not_visible)


def render_image(seed, away_fraction: float = 0.05) -> tuple[np.ndarray, list[dict]]:
    """One synthetic image, uint8 BGR [H, W, 3], and its annotations (without ids).

    seed: anything numpy's SeedSequence takes, e.g. (seed, split_id, index).
    """
    import cv2

    rng = np.random.default_rng(np.random.SeedSequence(seed))
    w, h = int(rng.integers(280, 361)), int(rng.integers(210, 271))
    light = _rotate(np.array([[0.0, -1.0]]), rng.uniform(-60, 60))[0]
    img = _background(rng, h, w)
    _distractors(rng, img, light)
    owner = np.zeros((h, w), np.uint8)
    count = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.2, 0.15]))
    drawn = []
    for height in _figure_heights(rng, count):
        fig = _sample_figure(rng, height, away_fraction)
        off = _place(rng, fig["kp"], w, h, cut=bool(rng.random() < 0.2))
        if off is None:
            continue
        fig["kp"] = fig["kp"] + off
        fig["head"]["centre"] = fig["head"]["centre"] + off
        mask = _draw_figure(img, fig, light)
        owner[mask > 0] = len(drawn) + 1
        drawn.append((fig, mask))
    if rng.random() < 0.15:
        _occluder(rng, img, owner)
    noisy = img.astype(np.float32) + rng.normal(0, rng.uniform(2, 6), img.shape).astype(np.float32)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.5, 0.9))
    anns = [_annotation(fig["kp"], mask, owner, i + 1, fig["facing"]) for i, (fig, mask) in enumerate(drawn)]
    return img, anns


# ----------------------------------------------------------------------------------------------
# Dataset on disk
# ----------------------------------------------------------------------------------------------

def _category() -> dict:
    return {"id": 1, "name": "person", "supercategory": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES), "skeleton": [list(p) for p in COCO_SKELETON]}


def _render_to_file(job: tuple) -> tuple[int, int, list[dict]]:
    """Worker: renders image `index` of `split` and writes it as JPEG; returns (width, height, anns)."""
    import cv2

    img_dir, split, index, seed, away_fraction = job
    img, anns = render_image((seed, _SPLIT_ID[split], index), away_fraction)
    path = Path(img_dir) / split / f"{index + 1:06d}.jpg"
    if not cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f"could not write {path}")
    return img.shape[1], img.shape[0], anns


def _write_split(root: Path, split: str, count: int, seed: int, workers: int, away_fraction: float) -> dict:
    """Renders one split into root/images/<split>/ and writes root/<split>.json; returns the COCO dict."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    jobs = [(str(root / "images"), split, i, seed, away_fraction) for i in range(count)]
    if workers > 1 and count > 16:
        import multiprocessing as mp

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            results = pool.map(_render_to_file, jobs, chunksize=8)
    else:
        results = [_render_to_file(job) for job in jobs]
    images, annotations = [], []
    for i, (w, h, anns) in enumerate(results):
        images.append({"id": i + 1, "file_name": f"{split}/{i + 1:06d}.jpg", "width": w, "height": h})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, **ann})
    coco = {"info": {"description": f"kpdet synthetic keypoints, split {split}, seed {seed}"},
            "images": images, "annotations": annotations, "categories": [_category()]}
    (root / f"{split}.json").write_text(json.dumps(coco))
    return coco


def generate_synthetic(root, num_train: int = 2000, num_val: int = 200, seed: int = 0,
                       workers: int | None = None, away_fraction: float = 0.05) -> dict:
    """Writes root/train.json, root/val.json and JPEGs under root/images/{train,val}/.

    file_name in the JSON is relative to root/images (use it as img_dir for both splits).
    Returns paths and counts: {"root", "img_dir", "train_ann", "val_ann", "num_images",
    "num_instances", "seconds"}.
    """
    start = time.perf_counter()
    root = Path(root)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    counts = {}
    for split, count in (("train", num_train), ("val", num_val)):
        coco = _write_split(root, split, count, seed, workers, away_fraction)
        counts[split] = (len(coco["images"]), len(coco["annotations"]))
    return {**_paths(root), "num_images": {k: v[0] for k, v in counts.items()},
            "num_instances": {k: v[1] for k, v in counts.items()}, "seconds": time.perf_counter() - start}


def _paths(root: Path) -> dict:
    return {"root": str(root), "img_dir": str(root / "images"),
            "train_ann": str(root / "train.json"), "val_ann": str(root / "val.json")}


def ensure_synthetic(root, generator=None, **kwargs) -> dict:
    """Generates the dataset (`generator(root, **kwargs)`, default `generate_synthetic`; the point
    objects' is `points_synthetic.generate_points`) unless root/train.json and root/val.json exist.

    Generation happens in a temporary sibling folder that is renamed to root at the end, so an
    interrupted run never leaves a folder that looks complete. Returns the paths and "generated".
    """
    root = Path(root)
    if all((root / f"{s}.json").is_file() for s in SPLITS):
        return {**_paths(root), "generated": False}
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists but lacks train.json/val.json; remove it to regenerate")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is not
    try:
        info = (generator or generate_synthetic)(tmp, **kwargs)
        if root.exists():
            root.rmdir()
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if all((root / f"{s}.json").is_file() for s in SPLITS):  # another process finished first
            return {**_paths(root), "generated": False}
        raise
    return {**info, **_paths(root), "generated": True}
