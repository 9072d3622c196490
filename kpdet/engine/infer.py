"""Inference on an image, a folder of images or a video with a trained checkpoint (tools/infer.py).

Outputs in `out_dir`:
- results.json: COCO results, a list of {image_id, category_id, keypoints: [x, y, score] * K, score}
  (image px, pixel centres at integers; score = mean keypoint confidence). image_id is the
  image's index in sorted order (predictions.json names the file) or the frame number.
- images: <stem>_pred.jpg drawn, and predictions.json [{image_id, file_name, boxes, keypoints}].
- video: <stem>_pred.mp4 drawn (same fps and size), <stem>.csv (DeepLabCut layout: one row per
  frame, x, y, likelihood per body part), and results.jsonl, appended and flushed after every
  batch of frames. On an error or interrupt the finished frames' results.json, CSV and a playable
  video are still written; after a hard kill results.jsonl holds every finished frame.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

from kpdet.build import spec_from_checkpoint, spec_to_checkpoint  # noqa: F401  (re-exported)
from kpdet.data.convert import coco_to_dlc
from kpdet.data.video import VIDEO_SUFFIXES, VideoError, VideoSink, open_video, read_frames
from kpdet.inference import Predictor, as_rgb, whole_image_box
from kpdet.vis import draw_keypoints

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
FRAME_BATCH = 8  # frames predicted together (and flushed together)


def image_paths(source: str | Path) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"no image, video or folder at {source}")
    paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
    return paths


def is_video(source: str | Path) -> bool:
    return Path(source).is_file() and Path(source).suffix.lower() in VIDEO_SUFFIXES


def coco_results(image_id: int, keypoints: np.ndarray, scores: np.ndarray, category_id: int = 1,
                 found: dict | None = None):
    """COCO results entries for the N instances of one image: keypoints [N, K, 2], scores [N, K].
    With a bottom-up Predictor result `found`, its "instance_scores" score the instances and its
    "category_ids" (point objects) name each one's category."""
    found = found or {}
    categories = found.get("category_ids", np.full(len(keypoints), category_id))
    instance = found.get("instance_scores", [float(c.mean()) if c.size else 0.0 for c in scores])
    return [{"image_id": int(image_id), "category_id": int(cat),
             "keypoints": np.concatenate([points, conf[:, None]], 1).reshape(-1).astype(float).tolist(),
             "score": float(score)}
            for points, conf, cat, score in zip(keypoints, scores, categories, instance)]


def draw(image: np.ndarray, keypoints: np.ndarray, skeleton) -> np.ndarray:
    for points in keypoints:
        image = draw_keypoints(image, points, np.ones(len(points), bool), skeleton, radius=3)
    return image


def load_boxes(boxes_file: str | None) -> dict | list:
    """{file_name or frame number: [[x, y, w, h], ...]}, or one list of boxes for every image/frame."""
    if not boxes_file:
        return {}
    try:
        boxes = json.loads(Path(boxes_file).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read boxes file {boxes_file}: {error}") from None
    if not isinstance(boxes, (dict, list)):
        raise ValueError(f"{boxes_file}: expected {{name: [[x, y, w, h], ...]}} or [[x, y, w, h], ...]")
    return boxes


def boxes_for(boxes: dict | list, key: str):
    return boxes if isinstance(boxes, list) else boxes.get(key)


def infer(cfg, checkpoint_path: str, source: str, out_dir: str, boxes_file: str | None = None,
          onnx: str | None = None, flip_test: bool | None = None, max_frames: int | None = None) -> int:
    """Predict every image (or frame) of `source`; write the outputs above to `out_dir`.
    Returns the number of images or frames done."""
    predictor = Predictor.from_checkpoint(checkpoint_path, cfg, cfg.device, flip_test, onnx)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    boxes = load_boxes(boxes_file)
    category_id = cfg.data.category_id or 1
    if is_video(source):
        return infer_video(predictor, source, out, boxes, category_id, max_frames)
    return infer_images(predictor, image_paths(source), out, boxes, category_id)


def infer_images(predictor: Predictor, paths: list[Path], out: Path, boxes, category_id: int) -> int:
    import cv2

    results, predictions = [], []
    for image_id, path in enumerate(paths):
        image = as_rgb(path)
        image_boxes = boxes_for(boxes, path.name)
        found = predictor.predict(image, image_boxes)
        drawn = draw(image, found["keypoints"], predictor.spec.skeleton)
        cv2.imwrite(str(out / f"{path.stem}_pred.jpg"), drawn[:, :, ::-1])
        results += coco_results(image_id, found["keypoints"], found["scores"], category_id, found)
        predictions.append({
            "image_id": image_id, "file_name": path.name, "keypoint_names": list(predictor.spec.names),
            "boxes": image_boxes if image_boxes is not None else [whole_image_box(image)],
            "keypoints": np.concatenate([found["keypoints"], found["scores"][..., None]], -1).tolist()})
    (out / "predictions.json").write_text(json.dumps(predictions, indent=1))
    (out / "results.json").write_text(json.dumps(results))
    return len(paths)


class Progress:
    """A tqdm bar on a terminal; otherwise a plain line every `every_s` seconds and at the end."""

    def __init__(self, total: int, desc: str, every_s: float = 10.0, stream=None):
        self.stream = stream or sys.stdout
        self.total, self.desc, self.every_s, self.done = total, desc, every_s, 0
        self.bar, self.start, self.last = None, time.perf_counter(), time.perf_counter()
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total or None, desc=desc, unit="frame", file=self.stream)

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif time.perf_counter() - self.last >= self.every_s:
            self.line()

    def line(self) -> None:
        self.last = time.perf_counter()
        rate = self.done / max(self.last - self.start, 1e-9)
        total = f"/{self.total}" if self.total else ""
        print(f"{self.desc}: {self.done}{total} frames ({rate:.1f} frames/s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            self.line()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def infer_video(predictor: Predictor, source, out: Path, boxes, category_id: int,
                max_frames: int | None = None) -> int:
    """Frames in batches of FRAME_BATCH: predict, draw into the output video, append to results.jsonl.
    Whatever happens, the finished frames' results.json, CSV and video are written (see module doc)."""
    info, capture = open_video(source)
    stem = Path(source).stem
    sink = VideoSink(out / f"{stem}_pred.mp4", info.fps, info.width, info.height)
    results, done = [], 0
    total = min(info.frame_count, max_frames) if max_frames else info.frame_count
    progress = Progress(total, f"{Path(source).name}")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        frames = read_frames(info, capture, max_frames)
        with open(out / "results.jsonl", "w") as stream:
            while True:
                batch, error = _take(frames, FRAME_BATCH)
                if batch:
                    results += _video_batch(predictor, batch, done, boxes, category_id, sink, stream)
                    done += len(batch)
                    progress.update(len(batch))
                if error is not None:
                    raise error
                if len(batch) < FRAME_BATCH:
                    break
    except BaseException:
        print(f"stopped after {done} frames of {info.path}; their outputs are in {out}", file=sys.stderr)
        raise
    finally:
        progress.close()
        sink.close()
        _write_video_outputs(out, stem, predictor, results, done, category_id)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return done


def _take(frames, count: int) -> tuple[list, Exception | None]:
    """Up to `count` frames, and the decoding error that ended them early (the frames before a
    corrupt one are still predicted)."""
    batch = []
    try:
        for frame in frames:
            batch.append(frame)
            if len(batch) == count:
                break
    except VideoError as error:
        return batch, error
    return batch, None


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _video_batch(predictor, frames, first: int, boxes, category_id, sink, stream) -> list[dict]:
    found = predictor.predict(frames, [boxes_for(boxes, str(first + i)) for i in range(len(frames))])
    entries = []
    for i, (frame, result) in enumerate(zip(frames, found)):
        sink.write(draw(frame, result["keypoints"], predictor.spec.skeleton))
        entries += coco_results(first + i, result["keypoints"], result["scores"], category_id, result)
    stream.write("".join(json.dumps(e) + "\n" for e in entries))
    stream.flush()
    return entries


def _write_video_outputs(out: Path, stem: str, predictor, results: list[dict], frames: int, category_id):
    """results.json and the DeepLabCut CSV (row = frame number; frames without an instance: zeros)."""
    (out / "results.json").write_text(json.dumps(results))
    data = {"images": [{"id": i, "file_name": str(i), "dlc_path": str(i)} for i in range(frames)],
            "annotations": [], "categories": [{"id": category_id, "keypoints": list(predictor.spec.names)}]}
    coco_to_dlc(data, out / f"{stem}.csv", results)
