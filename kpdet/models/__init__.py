"""Models: backbone + head, returning raw logits (heatmaps, or x/y bins). Models know no losses."""
from __future__ import annotations

import inspect

import torch
from torch import nn

from kpdet.models import ordinal_head  # noqa: F401  (registers the ordinal_xy head)
from kpdet.models.attribute_head import AttributeHead
from kpdet.models.backbones import BACKBONES, build_backbone
from kpdet.models.heads import HEADS, DeconvHead

SIGMOID_PRIOR_BIAS = -2.19  # -log((1 - 0.1) / 0.1): initial sigmoid output 0.1 (CenterNet)

__all__ = ["BACKBONES", "HEADS", "AttributeHead", "DeconvHead", "HeatmapModel", "SIGMOID_PRIOR_BIAS",
           "build_backbone", "build_model", "head_target_kind", "neck_deconvs", "output_stride"]


class HeatmapModel(nn.Module):
    """[B, 3, H, W] image -> the head's logits: [B, K, H/4, W/4] heatmaps (heatmap head: on a stride-32
    trunk 3 deconvolutions, on HRNet's stride-4 branch none) or ([B, K, N_x], [B, K, N_y]) bins
    (ordinal_xy head).

    With an `attribute` head (AttributeHead, model.attribute) the same trunk features also give
    class logits [B, classes] per crop; `forward(images, with_attribute=True)` returns
    (keypoint logits, attribute logits), the plain call still the keypoint logits alone, so
    predictors, export and panels see the same outputs with or without it. Without an attribute
    head the module (and its state dict) is exactly the keypoint model.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, attribute: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.attribute = attribute

    def forward(self, images: torch.Tensor, with_attribute: bool = False):
        if torch.jit.is_tracing():  # ONNX export: keypoint logits only (the TorchScript exporter
            with_attribute = False  # passes this default in as a traced tensor, not to be read as a bool)
        features = self.backbone(images)
        keypoints = self.head(features)
        if self.attribute is None:
            if with_attribute:
                raise ValueError("with_attribute=True, but the model has no attribute head (model.attribute)")
            return keypoints
        # run on every call (a pool and a linear layer) so that evaluation can read it with a hook
        attribute = self.attribute(features)
        return (keypoints, attribute) if with_attribute else keypoints


def build_model(backbone: str, num_keypoints: int, pretrained: str | None = None,
                head_channels: int = 256, num_deconv: int = 3, final_bias: float = 0.0,
                head_conv: int = 0, init_std: float = 0.001, head: str = "heatmap",
                attribute_classes: int | None = None, **head_params) -> HeatmapModel:
    """The trunk named `backbone` (build_backbone) + the head named `head` (HEADS; "heatmap" =
    SimpleBaseline's DeconvHead). Heatmaps come out at stride 32 / 2^num_deconv whatever the trunk:
    the head gets `neck_deconvs` deconvolutions, so a stride-32 ResNet gets num_deconv of them and
    HRNet's stride-4 branch (num_deconv 3) goes straight to the 1x1 heatmap layer. A head with an
    `in_stride` parameter (ordinal_xy) is told the trunk's stride. `final_bias`, `head_conv`,
    `init_std`: see DeconvHead; `head_params`: the head's own (ordinal_xy: input_size, bins).
    `attribute_classes`: add an AttributeHead with that many classes (None: none)."""
    trunk = build_backbone(backbone, pretrained)
    deconvs = neck_deconvs(trunk.stride, output_stride(num_deconv), backbone)
    head_cls = HEADS.get(head)
    if "in_stride" in inspect.signature(head_cls).parameters:
        head_params = {**head_params, "in_stride": trunk.stride}
    head_module = head_cls(trunk.out_channels, num_keypoints, head_channels, deconvs, final_bias, head_conv,
                           init_std, **head_params)
    attribute = AttributeHead(trunk.out_channels, attribute_classes) if attribute_classes else None
    return HeatmapModel(trunk, head_module, attribute)


def neck_deconvs(trunk_stride: int, heatmap_stride: int, backbone: str = "the trunk") -> int:
    """Deconvolutions (x2 each) between a trunk's features and the heatmap layer: log2(trunk stride /
    heatmap stride). SimpleBaseline: 32 -> 4 is 3; HRNet: 4 -> 4 is 0 (the 1x1 layer reads the
    high-resolution branch). Chosen from the strides, never from the backbone's name."""
    ratio = trunk_stride // heatmap_stride
    if trunk_stride % heatmap_stride or ratio & (ratio - 1):
        raise ValueError(f"model.num_deconv asks for stride-{heatmap_stride} heatmaps, but {backbone} gives "
                         f"stride-{trunk_stride} features: the heatmap stride must be the trunk's divided "
                         f"by a power of 2 (HRNet: num_deconv=3, stride 4)")
    return ratio.bit_length() - 1


def head_target_kind(head: str) -> str:
    """"heatmap" or "ordinal": the targets (codec, loss) the head named `head` trains with."""
    return getattr(HEADS.get(head), "target_kind", "heatmap")


def output_stride(num_deconv: int) -> int:
    """Input px per heatmap px: 32 / 2^num_deconv (on every trunk; see build_model)."""
    return 32 // 2**num_deconv
