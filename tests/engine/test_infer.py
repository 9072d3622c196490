"""tools/infer.py and tools/export.py: images, folders, videos, ONNX parity, and what survives an error."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA, run_tool

VIDEO = SHARED_DATA / "dlc_openfield" / "video" / "m3v1mp4.mp4"


@pytest.fixture(scope="module")
def infer_cfg(tiny_checkpoint):
    from kpdet.build import load_checkpoint
    from kpdet.inference import config_from_checkpoint

    cfg = config_from_checkpoint(load_checkpoint(tiny_checkpoint))
    cfg.device = "cpu"
    return cfg


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The first 5 frames of the openfield video, cut at test time (video files are not committed)."""
    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} not here")
    from kpdet.data.video import VideoSink, open_video, read_frames

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    info, capture = open_video(VIDEO)
    sink = VideoSink(path, info.fps, info.width, info.height)
    for frame in read_frames(info, capture, max_frames=5):
        sink.write(frame)
    sink.close()
    return path


@pytest.fixture(scope="module")
def onnx_file(tiny_checkpoint, tmp_path_factory) -> tuple[Path, float]:
    from kpdet.engine.export import export  # what tools/export.py calls

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return path, export(str(tiny_checkpoint), str(path))


def image_folder(tiny_synthetic, tmp_path, count=3) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for image in sorted((tiny_synthetic / "images" / "val").iterdir())[:count]:
        (folder / image.name).write_bytes(image.read_bytes())
    return folder


def test_folder_gives_coco_results_and_drawn_images(infer_cfg, tiny_checkpoint, tiny_synthetic, tmp_path):
    from kpdet.engine.infer import infer
    from kpdet.inference import Predictor

    folder = image_folder(tiny_synthetic, tmp_path)
    boxes = tmp_path / "boxes.json"
    first = sorted(folder.iterdir())[0]
    boxes.write_text(json.dumps({first.name: [[10, 10, 60, 80], [30, 20, 50, 50]]}))
    assert infer(infer_cfg, str(tiny_checkpoint), str(folder), str(tmp_path / "out"), str(boxes)) == 3
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["image_id"] for r in results] == [0, 0, 1, 2]  # two boxes in the first image
    assert all(set(r) == {"image_id", "category_id", "keypoints", "score"} for r in results)
    assert all(len(r["keypoints"]) == 17 * 3 for r in results)
    expected = Predictor.from_checkpoint(tiny_checkpoint, device="cpu").predict(first, [[30, 20, 50, 50]])
    got = np.array(results[1]["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(got[:, :2], expected["keypoints"][0], atol=1e-4)
    # score = mean keypoint confidence
    assert results[1]["score"] == pytest.approx(float(got[:, 2].mean()), abs=1e-6)
    assert len(list((tmp_path / "out").glob("*_pred.jpg"))) == 3


def test_empty_folder_is_an_error(infer_cfg, tiny_checkpoint, tmp_path):
    from kpdet.engine.infer import infer

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images .* in .*empty"):
        infer(infer_cfg, str(tiny_checkpoint), str(tmp_path / "empty"), str(tmp_path / "out"))


def test_video_gives_a_drawn_video_results_per_frame_and_a_dlc_csv(tiny_checkpoint, clip, tmp_path):
    import cv2

    from kpdet.data.convert import read_dlc_csv

    out = run_tool("tools/infer.py", "configs/smoke.yaml", str(tiny_checkpoint), str(clip), "--out",
                   str(tmp_path), "device=cpu")
    assert "clip.mp4: 5/5 frames" in out  # stdout is a pipe here: plain progress lines, no bar
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["image_id"] for r in results] == [0, 1, 2, 3, 4]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == results
    drawn = cv2.VideoCapture(str(tmp_path / "clip_pred.mp4"))
    assert (drawn.get(cv2.CAP_PROP_FRAME_COUNT), drawn.get(cv2.CAP_PROP_FPS)) == (5, 30)
    assert (drawn.get(cv2.CAP_PROP_FRAME_WIDTH), drawn.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    with open(tmp_path / "clip.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[2][1:4] == ["x", "y", "likelihood"] and [r[0] for r in rows[3:]] == ["0", "1", "2", "3", "4"]
    x, y, likelihood = (float(v) for v in rows[4][1:4])  # frame 1, first body part
    assert [x, y, likelihood] == pytest.approx(results[1]["keypoints"][:3])
    assert len(read_dlc_csv(tmp_path / "clip.csv")[1]) == 17  # DeepLabCut's reader takes it back


class FailingCapture:
    """A capture that says 5 frames and decodes 3: frame 3 is corrupt."""

    def __init__(self):
        self.read_count = 0

    def isOpened(self):
        return True

    def get(self, prop):
        import cv2

        return {cv2.CAP_PROP_FPS: 10.0, cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48,
                cv2.CAP_PROP_FRAME_COUNT: 5}.get(prop, 0)

    def read(self):
        self.read_count += 1
        if self.read_count > 3:
            return False, None
        return True, np.full((48, 64, 3), 40 * self.read_count, np.uint8)

    def release(self):
        pass


def test_corrupt_frame_is_named_and_finished_frames_are_kept(infer_cfg, tiny_checkpoint, tmp_path,
                                                             monkeypatch):
    import cv2

    from kpdet.data import video
    from kpdet.data.video import VideoError
    from kpdet.engine import infer as engine_infer

    monkeypatch.setattr(video, "_capture", lambda path: FailingCapture())
    monkeypatch.setattr(engine_infer, "FRAME_BATCH", 2)  # frames 0-1 are one flushed batch, 2 the next
    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"\0")
    with pytest.raises(VideoError, match=r"cannot decode frame 3 of 5 in .*broken.mp4"):
        engine_infer.infer(infer_cfg, str(tiny_checkpoint), str(fake), str(tmp_path / "out"))
    out = tmp_path / "out"
    assert [r["image_id"] for r in json.loads((out / "results.json").read_text())] == [0, 1, 2]
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    assert len((out / "broken.csv").read_text().splitlines()) == 3 + 3  # header rows + frames 0-2
    assert cv2.VideoCapture(str(out / "broken_pred.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_export_checks_itself_against_pytorch(onnx_file, tiny_checkpoint, tmp_path, capsys):
    from kpdet.engine.export import export

    assert 0 <= onnx_file[1] <= 1e-4
    if onnx_file[1] == 0:
        pytest.skip("onnxruntime matched PyTorch bit for bit: no difference to exceed a tolerance")
    with pytest.raises(RuntimeError, match=r"differ from PyTorch by .* > 1e-12"):
        export(str(tiny_checkpoint), str(tmp_path / "strict.onnx"), tolerance=1e-12)
    assert "largest heatmap difference" in capsys.readouterr().out


def test_onnx_path_of_infer_gives_the_pytorch_keypoints(infer_cfg, tiny_checkpoint, tiny_synthetic, onnx_file,
                                                        tmp_path):
    from kpdet.engine.infer import infer

    folder = image_folder(tiny_synthetic, tmp_path, count=4)
    infer(infer_cfg, str(tiny_checkpoint), str(folder), str(tmp_path / "torch"))
    infer(infer_cfg, str(tiny_checkpoint), str(folder), str(tmp_path / "onnx"), onnx=str(onnx_file[0]))
    a, b = (np.array([r["keypoints"] for r in json.loads((tmp_path / d / "results.json").read_text())])
            .reshape(-1, 17, 3) for d in ("torch", "onnx"))
    assert np.abs(a[..., :2] - b[..., :2]).max() <= 0.01  # px
    assert np.abs(a[..., 2] - b[..., 2]).max() <= 1e-4  # confidences


def test_onnx_model_refuses_another_input_size(onnx_file):
    import torch

    from kpdet.export import OnnxModel

    model = OnnxModel(onnx_file[0])
    assert model(torch.zeros(3, 3, 64, 64)).shape == (3, 17, 16, 16)  # dynamic batch axis
    with pytest.raises(ValueError, match=r"takes images \[B, 3, 64, 64\], got \[1, 3, 32, 64\]"):
        model(torch.zeros(1, 3, 32, 64))


def test_interrupted_video_keeps_the_frames_done(infer_cfg, tiny_checkpoint, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, turned into the same exception) during the second batch of frames: the
    first batch's results, CSV rows and video frames are written."""
    import cv2

    from kpdet.data import video
    from kpdet.engine import infer as engine_infer

    capture = FailingCapture()
    capture.read = lambda: (True, np.zeros((48, 64, 3), np.uint8))  # 5 good frames, as stated
    monkeypatch.setattr(video, "_capture", lambda path: capture)
    monkeypatch.setattr(engine_infer, "FRAME_BATCH", 2)
    real_batch, calls = engine_infer._video_batch, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_batch(*args)

    monkeypatch.setattr(engine_infer, "_video_batch", interrupted)
    (tmp_path / "long.mp4").write_bytes(b"\0")
    with pytest.raises(KeyboardInterrupt):
        engine_infer.infer(infer_cfg, str(tiny_checkpoint), str(tmp_path / "long.mp4"), str(tmp_path / "out"))
    out = tmp_path / "out"
    assert [r["image_id"] for r in json.loads((out / "results.json").read_text())] == [0, 1]
    assert len((out / "long.csv").read_text().splitlines()) == 3 + 2
    assert cv2.VideoCapture(str(out / "long_pred.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 2


def test_onnx_predictor_with_flip_test_matches_pytorch(tiny_checkpoint, tiny_synthetic, onnx_file):
    from kpdet.inference import Predictor

    image = sorted((tiny_synthetic / "images" / "val").iterdir())[0]
    boxes = [[5, 5, 80, 100], [20, 10, 60, 60]]
    results = [Predictor.from_checkpoint(tiny_checkpoint, device="cpu", flip_test=True, onnx=onnx).predict(
        image, boxes, heatmaps=True) for onnx in (None, onnx_file[0])]
    np.testing.assert_allclose(results[1]["keypoints"], results[0]["keypoints"], atol=0.01)
    np.testing.assert_allclose(results[1]["heatmaps"], results[0]["heatmaps"], atol=1e-4)


def test_not_a_checkpoint_is_named(tmp_path):
    import torch

    from kpdet.inference import Predictor

    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a kpdet checkpoint"):
        Predictor.from_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        Predictor.from_checkpoint(tmp_path / "missing.pt")


def test_video_boxes_per_frame_number(infer_cfg, tiny_checkpoint, tmp_path, monkeypatch):
    from kpdet.data import video
    from kpdet.engine import infer as engine_infer

    frames = iter([np.zeros((48, 64, 3), np.uint8)] * 5)  # then the end of the stream
    capture = FailingCapture()
    capture.read = lambda: next(((True, f) for f in frames), (False, None))
    monkeypatch.setattr(video, "_capture", lambda path: capture)
    (tmp_path / "v.mp4").write_bytes(b"\0")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"1": [[0, 0, 20, 20], [30, 10, 20, 30]], "3": []}))
    engine_infer.infer(infer_cfg, str(tiny_checkpoint), str(tmp_path / "v.mp4"), str(tmp_path / "out"),
                       str(boxes))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    # frames 0, 2, 4: the whole frame; frame 1: its two boxes; frame 3: no box, no entry
    assert [r["image_id"] for r in results] == [0, 1, 1, 2, 4]
    rows = (tmp_path / "out" / "v.csv").read_text().splitlines()[3:]
    assert rows[3].split(",")[1:4] == ["0.0", "0.0", "0.0"]  # frame 3: nothing found
