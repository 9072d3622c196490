"""Keypoint metadata: names, skeleton, left/right flip pairs, OKS sigmas."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# 1-based pairs, as in COCO's person category.
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13),
    (6, 7), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3),
    (2, 4), (3, 5), (4, 6), (5, 7),
)
# Per-keypoint OKS sigmas of COCO person keypoints (pycocotools' defaults).
COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)

# (left prefix, right prefix) in the order they are tried; "left"/"right" without
# a separator also matches "leftear" / "rightear".
_SIDE_PATTERNS = (
    (r"^left_(.+)$", "right_{}"), (r"^right_(.+)$", "left_{}"),
    (r"^l_(.+)$", "r_{}"), (r"^r_(.+)$", "l_{}"),
    (r"^left(.+)$", "right{}"), (r"^right(.+)$", "left{}"),
)


def flip_index_from_names(names: list[str] | tuple[str, ...]) -> list[int]:
    """flip_index[k] is the keypoint that k becomes after a horizontal flip.

    Pairs come from `left_*`/`right_*`, `l_*`/`r_*` and `left*`/`right*` names
    (case-insensitive); a keypoint without a partner maps to itself.
    """
    lower = [n.lower() for n in names]
    position = {n: i for i, n in enumerate(lower)}
    flip = list(range(len(names)))
    for k, name in enumerate(lower):
        for pattern, mirror in _SIDE_PATTERNS:
            match = re.match(pattern, name)
            if match and mirror.format(match.group(1)) in position:
                flip[k] = position[mirror.format(match.group(1))]
                break
    return flip


@dataclass(frozen=True)
class KeypointSpec:
    """What the keypoints of one category are.

    skeleton: 0-based index pairs. flip_index: see `flip_index_from_names`.
    sigmas: per-keypoint OKS sigmas (COCO's for the 17 COCO names, else uniform).
    """

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    flip_index: tuple[int, ...] = field(default=())
    sigmas: tuple[float, ...] = field(default=())

    def __post_init__(self):
        if not self.flip_index:
            object.__setattr__(self, "flip_index", tuple(flip_index_from_names(self.names)))
        if not self.sigmas:
            sigmas = COCO_SIGMAS if tuple(self.names) == COCO_KEYPOINT_NAMES else (0.05,) * len(self.names)
            object.__setattr__(self, "sigmas", tuple(sigmas))
        for what, values in (("flip_index", self.flip_index), ("sigmas", self.sigmas)):
            if len(values) != len(self.names):
                raise ValueError(f"{what} has {len(values)} entries for {len(self.names)} keypoints")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @classmethod
    def from_coco_category(cls, category: dict, flip_pairs=None, sigmas=None) -> KeypointSpec:
        """From a COCO category dict (`keypoints` names, 1-based `skeleton`)."""
        names = tuple(category["keypoints"])
        skeleton = tuple((a - 1, b - 1) for a, b in category.get("skeleton", []))
        flip = ()
        if flip_pairs:
            index = list(range(len(names)))
            for a, b in flip_pairs:
                index[a], index[b] = b, a
            flip = tuple(index)
        return cls(names, skeleton, flip, tuple(sigmas or ()))


COCO_PERSON = KeypointSpec(COCO_KEYPOINT_NAMES, tuple((a - 1, b - 1) for a, b in COCO_SKELETON))
