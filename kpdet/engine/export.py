"""Export a checkpoint's network to ONNX and check it against PyTorch (tools/export.py)."""
from __future__ import annotations

from pathlib import Path

import torch

from kpdet.data.coco import read_image, read_json
from kpdet.engine.infer import image_paths
from kpdet.export import OnnxModel, export_onnx
from kpdet.inference import Predictor, whole_image_box
from kpdet.predict import apply_activation, crop_for_model

CHECK_CROPS = 8


def real_crops(predictor: Predictor, images: str | None = None, count: int = CHECK_CROPS) -> torch.Tensor:
    """Normalised crops [N, 3, H, W] as inference makes them: whole images of `images` (a file or a
    folder), else the annotated boxes of the config's val (or train) split."""
    pairs = []
    if images:
        pairs = [(read_image(p), None) for p in image_paths(images)[:count]]
    else:
        for split in (predictor.config.data.val, predictor.config.data.train):
            if split.ann_file and Path(split.ann_file).is_file():
                data = read_json(split.ann_file)
                files = {img["id"]: img["file_name"] for img in data["images"]}
                anns = [a for a in data["annotations"]
                        if len(a.get("bbox") or ()) == 4 and min(a["bbox"][2:]) > 0]
                pairs = [(read_image(Path(split.img_dir) / files[a["image_id"]]), a["bbox"])
                         for a in anns[:count]]
                break
    if not pairs:
        raise FileNotFoundError("no images to check the export on: the config's data.val/data.train "
                                "annotation files are not here; pass --images FOLDER")
    return torch.stack([crop_for_model(image, box if box is not None else whole_image_box(image),
                                       predictor.input_size, predictor.padding)[0] for image, box in pairs])


@torch.no_grad()
def heatmap_difference(predictor: Predictor, onnx_model: OnnxModel, crops: torch.Tensor) -> float:
    """max |heatmaps_torch - heatmaps_onnx| after the loss's activation, batch by batch and one by one
    (the batch axis is dynamic)."""
    activation = predictor.activation
    reference = apply_activation(predictor.model(crops.to(predictor.device)).float().cpu(), activation)
    batched = apply_activation(onnx_model(crops), activation)
    single = torch.cat([apply_activation(onnx_model(crop[None]), activation) for crop in crops[:2]])
    return max(float((reference - batched).abs().max()), float((reference[:2] - single).abs().max()))


def export(checkpoint: str, out: str, config=None, images: str | None = None,
           tolerance: float = 1e-4) -> float:
    """Write the ONNX file, then check it with onnxruntime (CPU) on real crops; returns the largest
    heatmap difference and raises when it exceeds `tolerance`."""
    predictor = Predictor.from_checkpoint(checkpoint, config, device="cpu")
    path = export_onnx(predictor.model, out, predictor.input_size)
    crops = real_crops(predictor, images)
    difference = heatmap_difference(predictor, OnnxModel(path), crops)
    print(f"exported {path}; onnxruntime vs PyTorch on {len(crops)} real crops: "
          f"largest heatmap difference {difference:.3g}")
    if not difference <= tolerance:
        raise RuntimeError(f"{path}: onnxruntime heatmaps differ from PyTorch by {difference:.3g} "
                           f"> {tolerance:g}")
    return difference
