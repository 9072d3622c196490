"""Inference on image files with a trained checkpoint (tools/infer.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kpdet.data.coco import read_image
from kpdet.engine import builders
from kpdet.engine.checkpoint import eval_weights, load_checkpoint
from kpdet.keypoints import KeypointSpec
from kpdet.predict import build_predictor, predict_boxes
from kpdet.vis import draw_keypoints

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def spec_from_checkpoint(checkpoint: dict) -> KeypointSpec:
    meta = checkpoint["keypoints"]
    return KeypointSpec(tuple(meta["names"]), tuple(tuple(p) for p in meta["skeleton"]),
                        tuple(meta["flip_index"]), tuple(meta["sigmas"]))


def spec_to_checkpoint(spec: KeypointSpec) -> dict:
    return {"names": list(spec.names), "skeleton": [list(p) for p in spec.skeleton],
            "flip_index": list(spec.flip_index), "sigmas": list(spec.sigmas)}


def image_paths(source: str | Path) -> list[Path]:
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"no image or folder at {source}")
    paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
    return paths


def infer(cfg, checkpoint_path: str, source: str, out_dir: str, boxes_file: str | None = None) -> int:
    """Predict every image under `source`; write predictions.json and drawn images to `out_dir`."""
    import cv2

    checkpoint = load_checkpoint(checkpoint_path)
    spec = spec_from_checkpoint(checkpoint)
    device = builders.resolve_device(cfg.device)
    loss_fn = builders.build_loss_from_cfg(cfg)
    model = builders.build_model_from_cfg(cfg, spec.num_keypoints, loss_fn.activation)
    model.load_state_dict(eval_weights(checkpoint))
    codec = builders.build_codec_from_cfg(cfg)
    predictor = build_predictor(model.to(device).eval(), codec, loss_fn.activation)
    boxes = json.loads(Path(boxes_file).read_text()) if boxes_file else {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in image_paths(source):
        image = read_image(path)
        # Whole image in continuous coords (pixel centres at integers): [-0.5, W - 0.5].
        image_boxes = boxes.get(path.name) or [[-0.5, -0.5, image.shape[1], image.shape[0]]]
        keypoints, confidences = predict_boxes(predictor, image, image_boxes, tuple(cfg.model.input_size),
                                               cfg.data.bbox_padding, device)
        drawn = image
        for points in keypoints.numpy():
            drawn = draw_keypoints(drawn, points, np.ones(len(points), bool), spec.skeleton, radius=3)
        cv2.imwrite(str(out / f"{path.stem}_pred.jpg"), drawn[:, :, ::-1])
        results.append({"file_name": path.name, "boxes": image_boxes, "keypoint_names": list(spec.names),
                        "keypoints": np.concatenate([keypoints, confidences[..., None]], -1).tolist()})
    (out / "predictions.json").write_text(json.dumps(results, indent=1))
    return len(results)
