"""Converters: DeepLabCut CSV <-> COCO, iBUG .pts <-> COCO; round trips and the openfield source."""
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kpdet.data import DatasetError, TopDownDataset
from kpdet.data import convert as C
from kpdet.keypoints import flip_index_from_names

ROOT = Path(__file__).resolve().parents[2]
OPENFIELD = Path("/work/shared/data/dlc_openfield")

# Newer DLC layout: three index columns, an individuals row, unlabelled cells empty or NaN.
DLC_CSV = """scorer,,,me,me,me,me,me,me,me,me
individuals,,,m1,m1,m1,m1,m2,m2,m2,m2
bodyparts,,,nose,nose,tail,tail,nose,nose,tail,tail
coords,,,x,y,x,y,x,y,x,y
labeled-data,vid,a.png,10.5,20.25,30,40,,,NaN,NaN
labeled-data,vid,b.png,,,5,6,50.125,60,70,71
"""


def _images(folder, names, size=(100, 80)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((size[1], size[0], 3), np.uint8))


def test_dlc_csv_to_coco_by_hand(tmp_path):
    (tmp_path / "c.csv").write_text(DLC_CSV)
    _images(tmp_path / "img", ["a.png", "b.png"])  # found by base name
    data = C.dlc_to_coco(tmp_path / "c.csv", tmp_path / "img", "mouse", skeleton=[("nose", "tail")])
    category = data["categories"][0]
    assert category["keypoints"] == ["nose", "tail"] and category["skeleton"] == [[1, 2]]
    assert [i["file_name"] for i in data["images"]] == ["a.png", "b.png"]
    assert data["images"][0]["dlc_path"] == "labeled-data/vid/a.png" and data["images"][0]["width"] == 100
    # a.png: m1 labelled twice, m2 not at all (no annotation); b.png: m1 tail only, m2 both.
    kps = [a["keypoints"] for a in data["annotations"]]
    assert kps == [[10.5, 20.25, 2, 30.0, 40.0, 2], [0.0, 0.0, 0, 5.0, 6.0, 2],
                   [50.125, 60.0, 2, 70.0, 71.0, 2]]
    assert [a["num_keypoints"] for a in data["annotations"]] == [2, 1, 2]
    # First box: extent x [10.5, 30], y [20.25, 40]; margin max(0.4 * 19.75, 25) = 25;
    # x0 = max(10.5 - 25, 0) = 0, y0 = 0, x1 = min(30 + 25, 99) = 55, y1 = min(40 + 25, 79) = 65.
    assert data["annotations"][0]["bbox"] == [0.0, 0.0, 55.0, 65.0]


SINGLE_CSV = """scorer,me,me,me,me
bodyparts,nose,nose,tail,tail
coords,x,y,x,y
labeled-data/vid/a.png,10.5,20.25,30.0,40.0
labeled-data/vid/b.png,,,5.125,6.0
"""


def test_dlc_round_trip_through_coco(tmp_path):
    (tmp_path / "c.csv").write_text(SINGLE_CSV)
    _images(tmp_path / "img", ["a.png", "b.png"])
    C.coco_to_dlc(C.dlc_to_coco(tmp_path / "c.csv", tmp_path / "img"), tmp_path / "back.csv", scorer="me")
    # Byte-identical: paths come back from dlc_path, floats via repr, unlabelled cells stay empty.
    assert (tmp_path / "back.csv").read_text().replace("\r\n", "\n") == SINGLE_CSV


def test_coco_results_to_dlc_predictions(tmp_path):
    data = {"images": [{"id": 1, "file_name": "x.png"}], "annotations": [],
            "categories": [{"id": 1, "keypoints": ["a", "b"]}]}
    results = [{"image_id": 1, "keypoints": [1, 2, 0.9, 3, 4, 0.1], "score": 0.3},
               {"image_id": 1, "keypoints": [5, 6, 0.8, 7, 8, 0.7], "score": 0.8}]  # the best one is kept
    C.coco_to_dlc(data, tmp_path / "p.csv", results)
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[2] == "coords,x,y,likelihood,x,y,likelihood"
    assert lines[3] == "x.png,5.0,6.0,0.8,7.0,8.0,0.7"


@pytest.mark.skipif(not OPENFIELD.is_dir(), reason="shared openfield data not present")
def test_tool_dlc2coco_reproduces_openfield(tmp_path):
    out = tmp_path / "of.json"
    csv_file, img_dir = OPENFIELD / "source/CollectedData_Pranav.csv", OPENFIELD / "images"
    command = [sys.executable, str(ROOT / "tools/convert.py"), "dlc2coco", str(csv_file), "--img-dir",
               str(img_dir), "--out", str(out), "--category", "mouse"]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    ours, ref = json.loads(out.read_text()), json.loads((OPENFIELD / "all.json").read_text())
    names = {i["id"]: i["file_name"] for i in ours["images"]}
    ref_names = {i["id"]: i["file_name"] for i in ref["images"]}
    ours_by = {names[a["image_id"]]: a for a in ours["annotations"]}
    ref_by = {ref_names[a["image_id"]]: a for a in ref["annotations"]}
    assert sorted(ours_by) == sorted(ref_by) and len(ref_by) == 116
    for name, a in ref_by.items():
        if name == "img0102.png":  # all.json swaps its ears back (a label fix, see its info)
            continue
        np.testing.assert_allclose(ours_by[name]["keypoints"], a["keypoints"], atol=1e-3)
        np.testing.assert_allclose(ours_by[name]["bbox"], a["bbox"], atol=0.011)  # all.json rounds to 0.01
    ds = TopDownDataset(out, OPENFIELD / "images", (64, 64), train=False)
    assert ds.spec.flip_index == (0, 2, 1, 3) and len(ds) == 116


def _write_pts(path, points_1based):
    body = "\n".join(f"{x} {y}" for x, y in points_1based)
    path.write_text(f"version: 1\nn_points: {len(points_1based)}\n{{\n{body}\n}}\n")


def test_pts_to_coco_subtracts_one_and_round_trips(tmp_path):
    _images(tmp_path / "faces", ["f1.jpg", "f2.png"])
    _write_pts(tmp_path / "faces/f1.pts", [(1, 1), (11.5, 21), (31, 6)])
    _write_pts(tmp_path / "faces/f2.pts", [(2, 3), (4, 5), (6, 7)])
    data = C.pts_to_coco(tmp_path / "faces")
    a = data["annotations"][0]
    # 1-based (1, 1) is the first pixel's centre, COCO (0, 0); extent x [0, 30], y [0, 20].
    assert a["keypoints"] == [0, 0, 2, 10.5, 20, 2, 30, 5, 2] and a["bbox"] == [0, 0, 30, 20]
    assert data["categories"][0]["keypoints"] == ["p1", "p2", "p3"]
    assert [i["file_name"] for i in data["images"]] == ["f1.jpg", "f2.png"]
    written = C.coco_to_pts(data, tmp_path / "back")
    assert [p.name for p in written] == ["f1.pts", "f2.pts"]
    np.testing.assert_allclose(C.read_pts(written[0]), C.read_pts(tmp_path / "faces/f1.pts"))


def test_tool_pts2coco_and_ibug68_flip_pairs(tmp_path):
    _images(tmp_path / "faces", ["f.png"], size=(200, 200))
    _write_pts(tmp_path / "faces/f.pts", [(10 + i, 20 + i) for i in range(68)])
    out = tmp_path / "faces.json"
    subprocess.run([sys.executable, str(ROOT / "tools/convert.py"), "pts2coco", str(tmp_path / "faces"),
                    "--out", str(out)], check=True, capture_output=True, cwd=ROOT)
    names = json.loads(out.read_text())["categories"][0]["keypoints"]
    flip = flip_index_from_names(names)
    # The standard 300W mirror (0-based): jaw 0<->16, chin 8, brows 17<->26, nose tip 30, nostrils 31<->35,
    # outer eye corners 36<->45, inner 39<->42, mouth corners 48<->54, lower lip 59<->55, inner 67<->65.
    for a, b in [(0, 16), (7, 9), (17, 26), (21, 22), (31, 35), (36, 45), (39, 42), (40, 47), (48, 54),
                 (59, 55), (60, 64), (67, 65)]:
        assert flip[a] == b and flip[b] == a, (a, b, names[a], names[b])
    for centre in (8, 27, 30, 33, 51, 57, 62, 66):
        assert flip[centre] == centre
    assert sorted(flip) == list(range(68)) and names[36] == "right_eye_1" and names[45] == "left_eye_1"


def test_converter_errors_name_the_file(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match=r"x\.csv: not a DeepLabCut CSV"):
        C.read_dlc_csv(tmp_path / "x.csv")
    (tmp_path / "short.csv").write_text("scorer,s,s\nbodyparts,a,a\ncoords,x,y\nimg.png,1\n")
    with pytest.raises(DatasetError, match=r"short\.csv: line 4 has 2 cells, the header has 3"):
        C.read_dlc_csv(tmp_path / "short.csv")
    _write_pts(tmp_path / "lonely.pts", [(1, 1)])
    with pytest.raises(DatasetError, match=r"lonely\.pts: no image with the same name"):
        C.pts_to_coco(tmp_path)
    (tmp_path / "lonely.pts").write_text("version: 1\nn_points: 3\n{\n1 1\n}\n")
    with pytest.raises(DatasetError, match="n_points says 3 but 1 points are listed"):
        C.read_pts(tmp_path / "lonely.pts")
    assert math.isnan(C._number("")) and C._number("2.5") == 2.5
