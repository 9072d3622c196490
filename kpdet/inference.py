"""`Predictor`: images (arrays or files) and boxes -> keypoints in image px, from a checkpoint.

    from kpdet import Predictor
    predictor = Predictor.from_checkpoint("work_dirs/run/best.pt")
    result = predictor.predict("mouse.png", boxes=[[10, 20, 200, 150]])
    result["keypoints"]  # [N, K, 2] image px (pixel centres at integers), result["scores"]  # [N, K]

Top-down: each box (COCO x, y, w, h, image px) is padded by `data.bbox_padding`,
cropped to the network input as in evaluation, predicted, and mapped back.
Without boxes the whole image is one instance.

Bottom-up checkpoints (`data.mode: bottom_up`) take no boxes: the whole image is letterboxed as
in training (padding 1.0) and the result has "instance_scores" [N] too. Whole frame (task
single): one instance, scored as in evaluation (`kpdet.metrics.instance_score`). Point objects
(task points): every peak found (max-pool suppression, `data.bottom_up` threshold and top-k),
keypoints [N, 1, 2], scores [N, 1], instance_scores [N] (the peak score) and "labels" [N]
(the class: index into the checkpoint's keypoint names, one per category) and "category_ids" [N]
(COCO ids, for checkpoints that record them). Multi-instance pose
(task pose): every instance whose centre peak passes data.bottom_up.peak_threshold, keypoints
[N, K, 2], scores [N, K], instance_scores [N] (the centre score), best first.
Flip testing (`flip_test`, default eval.flip_test) works for every task: pose averages the
mirrored image's keypoint, centre and displacement maps (`kpdet.predict.PosePredictor`); points
and the whole frame average heatmaps as top-down does (point classes have no left/right, so their
flip index is the identity).
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from kpdet import build
from kpdet.config import load_config
from kpdet.data.coco import read_image
from kpdet.keypoints import KeypointSpec
from kpdet.predict import crop_for_model, crop_to_image, make_predictor

ImageLike = str | os.PathLike | np.ndarray


def whole_image_box(image: np.ndarray) -> list[float]:
    """The box covering every pixel: pixel centres at integers, so [-0.5, W - 0.5] x [-0.5, H - 0.5]."""
    return [-0.5, -0.5, float(image.shape[1]), float(image.shape[0])]


def check_box(box, image: np.ndarray, where: str) -> list[float]:
    """A COCO box [x, y, w, h] that has a size and overlaps the image, else ValueError naming it."""
    values = np.asarray(box, dtype=float).reshape(-1)
    if values.size != 4 or not np.isfinite(values).all():
        raise ValueError(f"{where}: a box is [x, y, w, h] of 4 finite numbers, got {box!r}")
    x, y, w, h = values.tolist()
    if w <= 0 or h <= 0:
        raise ValueError(f"{where} = {[x, y, w, h]} has zero size (w and h must be > 0)")
    height, width = image.shape[:2]
    if x >= width - 0.5 or y >= height - 0.5 or x + w <= -0.5 or y + h <= -0.5:
        raise ValueError(f"{where} = {[x, y, w, h]} lies outside the {width}x{height} image")
    return [x, y, w, h]


def as_rgb(image: ImageLike, bgr: bool = False, where: str = "image", index: int = 0) -> np.ndarray:
    """uint8 RGB [H, W, 3] from a file path (read_image names it when unreadable) or an array
    ([H, W], [H, W, 3] or [H, W, 4]; `bgr` says the channels are OpenCV's order)."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, image_id=index)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"{where}: expected a uint8 array, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or 0 in array.shape:
        raise ValueError(f"{where}: expected an image [H, W, 3], got shape {list(array.shape)}")
    array = array[:, :, :3]
    return np.ascontiguousarray(array[:, :, ::-1] if bgr else array)


def config_from_checkpoint(checkpoint: dict, path="checkpoint") -> DictConfig:
    if "config" not in checkpoint:
        raise build.CheckpointError(f"{path} holds no config; pass config=... to Predictor.from_checkpoint")
    return load_config(io.StringIO(checkpoint["config"]))


class Predictor:
    """Keypoints of boxes in images, batched over boxes. Build it with `from_checkpoint`.

    model: images [B, 3, H, W] -> logits (a torch module or an `OnnxModel`); input_size: (W, H).
    """

    def __init__(self, model, codec, activation: str, spec: KeypointSpec, input_size: Sequence[int],
                 padding: float = 1.25, device: torch.device | str = "cpu", flip_test: bool = False,
                 batch_size: int = 32):
        self.model, self.codec, self.activation, self.spec = model, codec, activation, spec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.padding, self.device = padding, torch.device(device)
        self.flip_test, self.batch_size = flip_test, batch_size
        self._inner = {}
        self.config: DictConfig | None = None  # set by from_checkpoint
        self.pipeline = "top_down"  # kpdet.build.pipeline_kind of the checkpoint's config
        self.category_ids = np.zeros(0, np.int64)  # COCO category id per channel group (checkpoint)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike,
                        config: str | os.PathLike | DictConfig | None = None, device: str = "auto",
                        flip_test: bool | None = None, onnx: str | os.PathLike | None = None,
                        batch_size: int = 32) -> Predictor:
        """The checkpoint's model, codec and keypoints; `config` (a path or a loaded config) overrides the
        one saved in the checkpoint. flip_test None = the config's eval.flip_test. `onnx`: run the network
        from this exported file with onnxruntime (CPU) instead of PyTorch; pre- and post-processing as
        with PyTorch."""
        state = build.load_checkpoint(checkpoint)
        if "keypoints" not in state or "model" not in state:
            raise build.CheckpointError(f"{checkpoint} is not a kpdet checkpoint: it lacks 'model' or "
                                        "'keypoints'")
        if config is None:
            cfg, config_name = config_from_checkpoint(state, checkpoint), f"the config in {checkpoint}"
        else:
            cfg = config if isinstance(config, DictConfig) else load_config(config)
            config_name = "the given config" if isinstance(config, DictConfig) else str(config)
        spec = build.spec_from_checkpoint(state)
        activation = build.build_loss_from_cfg(cfg).activation
        model = build.build_model_from_cfg(cfg, spec.num_keypoints, activation, pretrained=False)
        build.load_weights(model, build.eval_weights(state), checkpoint, config_name)
        device = build.resolve_device(device)
        if onnx is not None:
            from kpdet.export import OnnxModel

            model, device = OnnxModel(onnx), torch.device("cpu")
        else:
            model = model.to(device).eval()
        flip = cfg.eval.flip_test if flip_test is None else flip_test
        pipeline = build.pipeline_kind(cfg)
        padding = cfg.data.bbox_padding if pipeline == "top_down" else 1.0  # bottom-up: the letterbox
        predictor = cls(model, build.build_codec_from_cfg(cfg), activation, spec, tuple(cfg.model.input_size),
                        padding, device, flip, batch_size)
        predictor.config, predictor.pipeline = cfg, pipeline
        predictor.category_ids = np.asarray(state.get("categories") or [], dtype=np.int64)
        return predictor

    def inner(self, flip_test: bool):
        """The crop-level predictor (`kpdet.predict.make_predictor`), with or without flip testing."""
        if flip_test not in self._inner:
            flip_index = self.spec.flip_index if flip_test else None
            self._inner[flip_test] = make_predictor(self.model, self.codec, self.activation, flip_index)
        return self._inner[flip_test]

    def pose_predictor(self, flip_test: bool):
        """The multi-instance decoder of a bottom-up pose checkpoint (`kpdet.predict.PosePredictor`),
        with the keypoint spec's flip index when flip testing."""
        from kpdet.predict import PosePredictor

        key = ("pose", flip_test)
        if key not in self._inner:
            flip_index = self.spec.flip_index if flip_test else None
            self._inner[key] = PosePredictor(self.model, self.codec, self.activation, self.num_keypoints,
                                             flip_index, **build.pose_decoding(self.config))
        return self._inner[key]

    def predict(self, images: ImageLike | Sequence[ImageLike], boxes=None, bgr: bool = False,
                flip_test: bool | None = None, heatmaps: bool = False):
        """One image (array or path) -> {"keypoints": [N, K, 2] image px, "scores": [N, K]} (numpy float32);
        a list of images -> a list of those. boxes: [N, 4] COCO x, y, w, h per image (a list of those
        for a list of images); None = the whole image. heatmaps=True adds "heatmaps": the network
        outputs after activation [N, K, h, w]. Zero boxes give N = 0."""
        single = isinstance(images, (str, os.PathLike)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3))
        batch = [images] if single else list(images)
        per_image = [boxes] if single else (list(boxes) if boxes is not None else [None] * len(batch))
        if len(per_image) != len(batch):
            raise ValueError(f"boxes: got {len(per_image)} box lists for {len(batch)} images")
        if self.pipeline != "top_down" and any(b is not None for b in per_image):
            raise ValueError("this checkpoint is bottom-up (data.mode=bottom_up): it reads whole images and "
                             "takes no boxes; call predict(image) without boxes")
        crops, affines, owner = [], [], []
        for i, (image, image_boxes) in enumerate(zip(batch, per_image)):
            name = f"image {i}" + (f" ({image})" if isinstance(image, (str, os.PathLike)) else "")
            rgb = as_rgb(image, bgr, name, i)
            for box in self._boxes(rgb, image_boxes, name):
                crop, affine = crop_for_model(rgb, box, self.input_size, self.padding)
                crops.append(crop)
                affines.append(affine)
                owner.append(i)
        flip = self.flip_test if flip_test is None else flip_test
        if self.pipeline in ("points", "pose"):
            whole = self._points if self.pipeline == "points" else self._pose
            results = [whole(crop, affine, flip) for crop, affine in zip(crops, affines)]
            return results[0] if single else results
        out = self._run(crops, affines, flip, heatmaps)
        if self.pipeline == "whole_frame":
            from kpdet.metrics.coco import instance_score

            out["instance_scores"] = instance_score(out["scores"]).astype(np.float32)
        owner = np.asarray(owner, dtype=int)
        results = [{key: value[owner == i] for key, value in out.items()} for i in range(len(batch))]
        return results[0] if single else results

    def _boxes(self, image: np.ndarray, boxes, name: str) -> list[list[float]]:
        if boxes is None:
            return [whole_image_box(image)]
        boxes = np.asarray(boxes, dtype=float)
        if boxes.size == 0:
            return []
        if boxes.ndim == 1:
            boxes = boxes[None]
        return [check_box(box, image, f"{name}: box {j}") for j, box in enumerate(boxes)]

    @torch.no_grad()
    def _run(self, crops, affines, flip: bool, heatmaps: bool) -> dict[str, np.ndarray]:
        """Crops in chunks of batch_size -> numpy keypoints (image px), scores and maybe heatmaps."""
        k = self.spec.num_keypoints
        out = {"keypoints": np.zeros((0, k, 2), np.float32), "scores": np.zeros((0, k), np.float32)}
        if heatmaps:  # the empty result keeps the heatmap shape when the codec has one
            width, height = getattr(self.codec, "heatmap_size", (0, 0))
            out["heatmaps"] = np.zeros((0, k, int(height), int(width)), np.float32)
        chunks = {key: [value] for key, value in out.items()}
        for start in range(0, len(crops), self.batch_size):
            batch = torch.stack(crops[start:start + self.batch_size]).to(self.device)
            keypoints, scores, outputs = self.inner(flip)(batch)
            affine = torch.stack(affines[start:start + self.batch_size])
            chunks["keypoints"].append(crop_to_image(keypoints.float().cpu(), affine).numpy())
            chunks["scores"].append(scores.float().cpu().numpy())
            if heatmaps:
                chunks["heatmaps"].append(outputs.float().cpu().numpy())
        return {key: np.concatenate(parts) for key, parts in chunks.items()}

    @torch.no_grad()
    def _points(self, crop: torch.Tensor, affine: torch.Tensor, flip: bool) -> dict[str, np.ndarray]:
        """Every point object of one letterboxed image (module docstring), image px."""
        from kpdet.codecs.instances import decode_points
        from kpdet.predict import OffsetPredictor

        inner, images = self.inner(flip), crop[None].to(self.device)
        scores, offsets = (inner.heatmaps_and_offsets(images) if isinstance(inner, OffsetPredictor)
                           else (inner.heatmaps(images), None))
        bu = self.config.data.bottom_up
        found = decode_points(self.codec, scores, offsets, bu.max_peaks, bu.peak_threshold, bu.nms_kernel)
        keep = found["keep"][0].cpu()
        labels = torch.arange(keep.shape[0])[:, None].expand_as(keep)[keep]
        points = crop_to_image(found["points"][0].cpu()[keep][None].float(), affine[None])[0]
        values = found["scores"][0].cpu()[keep].float()
        out = {"keypoints": points[:, None].numpy(), "scores": values[:, None].numpy(),
               "instance_scores": values.numpy(), "labels": labels.numpy()}
        if len(self.category_ids) == len(self.spec.names):  # checkpoints that record them
            out["category_ids"] = self.category_ids[out["labels"]]
        return out

    @torch.no_grad()
    def _pose(self, crop: torch.Tensor, affine: torch.Tensor, flip: bool) -> dict[str, np.ndarray]:
        """Every instance of one letterboxed image (kpdet.codecs.pose; flip testing with the spec's
        flip index when `flip`), image px, sorted by instance score."""
        found = {k: v[0].cpu() for k, v in self.pose_predictor(flip)(crop[None].to(self.device)).items()}
        keep = found["keep"]
        order = found["instance_scores"][keep].argsort(descending=True)
        points = found["keypoints"][keep][order].float()
        image_points = crop_to_image(points.reshape(1, -1, 2), affine[None])[0].view_as(points)
        return {"keypoints": image_points.numpy(), "scores": found["scores"][keep][order].float().numpy(),
                "instance_scores": found["instance_scores"][keep][order].float().numpy()}

    @property
    def num_keypoints(self) -> int:
        return self.spec.num_keypoints


