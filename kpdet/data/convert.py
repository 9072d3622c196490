"""Dataset converters to and from COCO keypoints: DeepLabCut CSV, iBUG/300W `.pts`.

- `dlc_to_coco`: DeepLabCut `CollectedData_*.csv` (header rows scorer / [individuals] /
  bodyparts / coords; one or three index columns; empty or NaN cells = unlabelled,
  v=0). DLC coordinates already put pixel centres at integers, like COCO. Boxes are
  the keypoints' extent plus a margin of max(40% of its longer side, 25 px) on every
  side, clipped to the outermost pixel centres (the rule of ../shared/data/dlc_openfield).
- `coco_to_dlc`: COCO ground truth (x, y) or COCO results (x, y, likelihood) back
  to a DLC-style CSV; the original DLC path of each image is kept in `dlc_path`.
- `pts_to_coco` / `coco_to_pts`: iBUG `.pts` files are 1-based (the first pixel's
  centre is (1, 1)); COCO is 0-based, so 1 is subtracted on the way in and added
  on the way out. Boxes are the tight landmark extent (the 300W convention, which
  NME-by-box-size uses). 68-point files get left/right names, so flips work.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from kpdet.data.coco import DatasetError, read_image

_COORDS = ("x", "y", "likelihood")


def _number(cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        return math.nan
    return value


def read_dlc_csv(path) -> tuple[list[str], list[str], list[tuple[str, dict]]]:
    """(individuals, bodyparts, rows) of a DLC CSV; each row is (image path, {(ind, part): (x, y)}).

    Single-animal files have one individual, "" ; coordinates are NaN where unlabelled.
    """
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    names = ("scorer", "individuals", "bodyparts", "coords")
    header = {row[0]: row for row in table[:4] if row and row[0] in names}
    if "bodyparts" not in header or "coords" not in header:
        raise DatasetError(f"{path}: not a DeepLabCut CSV (needs 'bodyparts' and 'coords' header rows)")
    coords = header["coords"]
    n_index = next(i for i, c in enumerate(coords) if c in _COORDS)  # 1, or 3 in newer DLC files
    individuals = header.get("individuals", [""] * len(coords))
    columns = [(individuals[i], header["bodyparts"][i], coords[i]) for i in range(n_index, len(coords))]
    parts = list(dict.fromkeys(part for _, part, _ in columns))
    inds = list(dict.fromkeys(ind for ind, _, _ in columns))
    rows = []
    for line_no, row in enumerate(table[len(header):], start=len(header) + 1):
        if not any(row):
            continue
        if len(row) != len(coords):
            raise DatasetError(f"{path}: line {line_no} has {len(row)} cells, the header has {len(coords)}")
        values: dict = {}
        for (ind, part, coord), cell in zip(columns, row[n_index:]):
            values.setdefault((ind, part), {})[coord] = _number(cell)
        points = {key: (v.get("x", math.nan), v.get("y", math.nan)) for key, v in values.items()}
        rows.append(("/".join(c for c in row[:n_index] if c), points))
    return inds, parts, rows


def _resolve_image(img_dir: Path, dlc_path: str, csv_path) -> str:
    """file_name relative to img_dir: the DLC path itself, or its base name."""
    for candidate in (dlc_path, Path(dlc_path).name):
        if (img_dir / candidate).is_file():
            return candidate
    raise DatasetError(f"{csv_path}: image of row {dlc_path!r} not found in {img_dir}")


def keypoint_extent_box(xy: np.ndarray, width: int, height: int, ratio: float = 0.4, minimum: float = 25.0):
    """Labelled points [N, 2] -> (x, y, w, h): extent + max(ratio * longer side, minimum), clipped
    to the outermost pixel centres [0, width - 1] x [0, height - 1] (as the openfield files)."""
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    margin = max(ratio * max(x1 - x0, y1 - y0), minimum)
    x0, y0 = max(x0 - margin, 0.0), max(y0 - margin, 0.0)
    x1, y1 = min(x1 + margin, width - 1.0), min(y1 + margin, height - 1.0)
    return [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]


def _instance(points: dict, ind: str, parts: list[str], width: int, height: int) -> dict | None:
    """COCO annotation fields for one individual, or None when none of its parts is labelled."""
    flat, labelled = [], []
    for part in parts:
        x, y = points.get((ind, part), (math.nan, math.nan))
        ok = math.isfinite(x) and math.isfinite(y)
        flat += [float(x), float(y), 2] if ok else [0.0, 0.0, 0]
        if ok:
            labelled.append((x, y))
    if not labelled:
        return None
    bbox = keypoint_extent_box(np.array(labelled), width, height)
    return {"keypoints": flat, "num_keypoints": len(labelled), "bbox": bbox,
            "area": round(bbox[2] * bbox[3], 2), "iscrowd": 0}


def dlc_to_coco(csv_path, img_dir, category: str = "animal", skeleton=()) -> dict:
    """COCO keypoints dict of a DeepLabCut CSV; skeleton: pairs of body-part names."""
    inds, parts, rows = read_dlc_csv(csv_path)
    img_dir = Path(img_dir)
    images, annotations = [], []
    for image_id, (dlc_path, points) in enumerate(rows, start=1):
        file_name = _resolve_image(img_dir, dlc_path, csv_path)
        height, width = read_image(img_dir / file_name, image_id).shape[:2]
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                       "dlc_path": dlc_path})
        for ind in inds:
            fields = _instance(points, ind, parts, width, height)
            if fields:
                ann_id = len(annotations) + 1
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": 1, **fields})
    index = {p: i + 1 for i, p in enumerate(parts)}
    edges = [[index[a], index[b]] for a, b in skeleton]
    cat = {"id": 1, "name": category, "keypoints": parts, "skeleton": edges}
    return {"info": {"description": f"converted from {Path(csv_path).name}"}, "images": images,
            "annotations": annotations, "categories": [cat]}


def _best_results(results: list[dict]) -> dict:
    """image_id -> the highest-scoring result (single-animal DLC files have one row per image)."""
    best: dict = {}
    for r in results:
        if r["image_id"] not in best or r.get("score", 0) > best[r["image_id"]].get("score", 0):
            best[r["image_id"]] = r
    return best


def coco_to_dlc(data: dict, out_csv, results: list[dict] | None = None, scorer: str = "kpdet") -> None:
    """Write a single-animal DLC CSV: ground truth (x, y; empty when v=0), or, given COCO
    `results` ([{image_id, keypoints: [x, y, score] * K, score}]), predictions (x, y, likelihood)."""
    parts = next(c for c in data["categories"] if c.get("keypoints"))["keypoints"]
    coords = _COORDS if results is not None else _COORDS[:2]
    by_image = _best_results(results) if results is not None else {
        a["image_id"]: a for a in data["annotations"] if not a.get("iscrowd")}
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["scorer"] + [scorer] * len(parts) * len(coords))
        writer.writerow(["bodyparts"] + [p for p in parts for _ in coords])
        writer.writerow(["coords"] + list(coords) * len(parts))
        for img in data["images"]:
            entry = by_image.get(img["id"])
            cells = []
            for k in range(len(parts)):
                x, y, v = entry["keypoints"][3 * k: 3 * k + 3] if entry else (0, 0, 0)
                labelled = results is not None or v > 0
                cells += [repr(float(x)) if labelled else "", repr(float(y)) if labelled else ""]
                cells += [repr(float(v))] if results is not None else []
            writer.writerow([img.get("dlc_path", img["file_name"])] + cells)


def _pair_names(groups) -> list[str]:
    """Names from (group, [(a, b) pairs or (a,) centres]) with 0-based indices; a = subject's right."""
    names: dict[int, str] = {}
    for group, members in groups:
        for j, member in enumerate(members, start=1):
            if len(member) == 2:
                names[member[0]], names[member[1]] = f"right_{group}_{j}", f"left_{group}_{j}"
            else:
                names[member[0]] = f"{group}_{j}"
    return [names[i] for i in range(len(names))]


# iBUG 68-point scheme (300W): point 1 (index 0) is the subject's right jaw end. Outer eye
# corners are right_eye_1 (index 36) and left_eye_1 (index 45), the inter-ocular pair.
IBUG68_NAMES = _pair_names([
    ("jaw", [(i, 16 - i) for i in range(8)] + [(8,)]),
    ("brow", [(17 + i, 26 - i) for i in range(5)]),
    ("nose", [(27,), (28,), (29,), (30,), (31, 35), (32, 34), (33,)]),
    ("eye", [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]),
    ("mouth", [(48, 54), (49, 53), (50, 52), (51,), (59, 55), (58, 56), (57,),
               (60, 64), (61, 63), (62,), (67, 65), (66,)]),
])


def read_pts(path) -> np.ndarray:
    """iBUG .pts -> [N, 2] 0-based (x, y)."""
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    try:
        start, end = lines.index("{"), lines.index("}")
        points = np.array([[float(v) for v in line.split()[:2]] for line in lines[start + 1:end]])
    except ValueError as error:
        raise DatasetError(f"{path}: not an iBUG .pts file ({error})") from None
    declared = [int(line.split(":")[1]) for line in lines if line.startswith("n_points")]
    if declared and declared[0] != len(points):
        raise DatasetError(f"{path}: n_points says {declared[0]} but {len(points)} points are listed")
    return points - 1.0


def write_pts(path, points: np.ndarray) -> None:
    """[N, 2] 0-based -> iBUG .pts (1-based)."""
    body = "\n".join(f"{x + 1:.6f} {y + 1:.6f}" for x, y in np.asarray(points, dtype=np.float64))
    Path(path).write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


def _image_for(pts: Path) -> Path:
    for ext in (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".bmp"):
        if pts.with_suffix(ext).is_file():
            return pts.with_suffix(ext)
    raise DatasetError(f"{pts}: no image with the same name (.jpg/.png/.jpeg/.bmp) beside it")


def pts_to_coco(folder, category: str = "face") -> dict:
    """COCO keypoints dict of every `*.pts` under `folder` (file_name relative to it)."""
    folder = Path(folder)
    files = sorted(folder.rglob("*.pts"))
    if not files:
        raise DatasetError(f"no .pts files under {folder}")
    images, annotations, n_points = [], [], None
    for image_id, pts in enumerate(files, start=1):
        xy = read_pts(pts)
        if n_points not in (None, len(xy)):
            raise DatasetError(f"{pts}: {len(xy)} points, but earlier files have {n_points}")
        n_points = len(xy)
        image_path = _image_for(pts)
        height, width = read_image(image_path, image_id).shape[:2]
        images.append({"id": image_id, "file_name": str(image_path.relative_to(folder)),
                       "width": width, "height": height})
        (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
        annotations.append({
            "id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": n_points,
            "keypoints": [float(v) for x, y in xy for v in (x, y, 2)],
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "area": float((x1 - x0) * (y1 - y0)),
        })
    names = IBUG68_NAMES if n_points == 68 else [f"p{i + 1}" for i in range(n_points)]
    return {"info": {"description": f"converted from .pts files under {folder}"}, "images": images,
            "annotations": annotations, "categories": [{"id": 1, "name": category, "keypoints": names,
                                                        "skeleton": []}]}


def coco_to_pts(data: dict, out_dir) -> list[Path]:
    """One .pts per annotated image (first non-crowd instance), named after the image file."""
    out_dir = Path(out_dir)
    written = []
    anns = {}
    for a in data["annotations"]:
        if not a.get("iscrowd"):
            anns.setdefault(a["image_id"], a)
    for img in data["images"]:
        if img["id"] in anns:
            path = out_dir / Path(img["file_name"]).with_suffix(".pts")
            path.parent.mkdir(parents=True, exist_ok=True)
            write_pts(path, np.asarray(anns[img["id"]]["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2])
            written.append(path)
    return written
