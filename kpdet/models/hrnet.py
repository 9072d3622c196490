"""HRNet as pose uses it (Sun et al., Deep High-Resolution Representation Learning for Human Pose
Estimation, CVPR 2019): image -> the stride-4 high-resolution branch [B, W, H/4, W/4].

    stem      two 3x3 stride-2 convolutions (64 channels)                       stride 4
    layer1    Bottleneck blocks (ResNet's, expansion 4)                         stride 4
    stage 2-4 parallel branches at strides 4, 8, 16, 32 with widths W, 2W, 4W, 8W; each module runs
              BasicBlocks on every branch, then fuses: every output branch sums all inputs, brought
              to its resolution (strided 3x3 convolutions down, 1x1 conv + nearest upsampling up)
    out       the last module fuses into the stride-4 branch only (pose HRNet's multi_scale_output
              = False); the heatmap layer (a 1x1 conv in the head) reads it, no deconvolutions

Module and parameter names follow the official code (conv1, bn1, conv2, bn2, layer1, transition1,
stage2, ..., branches, fuse_layers), so the official pose and ImageNet checkpoints, and MMPose's
(prefix "backbone."), load by name through `model.pretrained`.

Widths: W32 at 256x192 has 28.5 M parameters and 7.1 GFLOPs (multiply-adds) with 17 keypoints
(paper, Table 1); tests/models/test_hrnet.py checks it within 5 %. The small variants come from
HRNetV2 (Wang et al., TPAMI 2020; the HRNet-Image-Classification and HRNet-Semantic-Segmentation
repositories' w18_small_model_v1/v2 configurations, also MMSegmentation's `hr18s` and timm's
`hrnet_w18_small(_v2)`): `hrnet_w18_small` here is HRNetV2-W18-Small-v2 (widths 18..144, the
one MMSegmentation names hrnetv2_w18_small; timm's `hrnet_w18_small` is v1), `hrnet_w18_small_v1`
is v1 (widths 16..128).
"""
from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck


@dataclass(frozen=True)
class Arch:
    """layer1: `stem_blocks` Bottlenecks of `stem_planes` (output 4 * stem_planes channels); then
    stages 2-4, each (modules, BasicBlocks per branch, branch widths)."""

    stem_blocks: int
    stem_planes: int
    stages: tuple[tuple[int, int, tuple[int, ...]], ...]


def _standard(w: int) -> Arch:
    """HRNet-W{w}: 4 Bottlenecks, then 1, 4 and 3 modules of 4 BasicBlocks per branch."""
    return Arch(4, 64, ((1, 4, (w, 2 * w)), (4, 4, (w, 2 * w, 4 * w)), (3, 4, (w, 2 * w, 4 * w, 8 * w))))


ARCHS = {
    "hrnet_w18_small": Arch(2, 64, ((1, 2, (18, 36)), (3, 2, (18, 36, 72)), (2, 2, (18, 36, 72, 144)))),
    "hrnet_w18_small_v1": Arch(1, 32, ((1, 2, (16, 32)), (1, 2, (16, 32, 64)), (1, 2, (16, 32, 64, 128)))),
    "hrnet_w18": _standard(18),
    "hrnet_w32": _standard(32),
    "hrnet_w48": _standard(48),
}


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


def _blocks(block: type, c_in: int, planes: int, count: int) -> nn.Sequential:
    """`count` residual blocks; the first gets a 1x1 projection when the width changes (ResNet's)."""
    c_out = planes * block.expansion
    downsample = _conv_bn(c_in, c_out, 1, 1, relu=False) if c_in != c_out else None
    return nn.Sequential(block(c_in, planes, downsample=downsample),
                         *(block(c_out, planes) for _ in range(count - 1)))


def _fuse(widths: tuple[int, ...], i: int, j: int) -> nn.Module:
    """Branch j -> the resolution and width of branch i."""
    if j == i:
        return nn.Identity()
    if j > i:  # lower resolution: 1x1 conv, then nearest upsampling by 2^(j-i)
        return nn.Sequential(*_conv_bn(widths[j], widths[i], 1, 1, relu=False),
                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
    steps = [_conv_bn(widths[j], widths[j], 3, 2, relu=True) for _ in range(i - j - 1)]
    return nn.Sequential(*steps, _conv_bn(widths[j], widths[i], 3, 2, relu=False))


class HRModule(nn.Module):
    """One exchange unit: BasicBlocks on each branch, then every output branch i gets
    ReLU(sum_j fuse[i][j](x_j)). `outputs`: how many branches it returns (1 = only the
    highest resolution, for the last module of a pose HRNet)."""

    def __init__(self, widths: tuple[int, ...], blocks: int, outputs: int):
        super().__init__()
        self.branches = nn.ModuleList(_blocks(BasicBlock, w, w, blocks) for w in widths)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse(widths, i, j) for j in range(len(widths))) for i in range(outputs))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        return [self.relu(functools.reduce(operator.add, (f(x) for f, x in zip(fuse, xs))))
                for fuse in self.fuse_layers]


def _transition(c_in: tuple[int, ...], c_out: tuple[int, ...]) -> nn.ModuleList:
    """Existing branches change width with a 3x3 conv (or pass); the new one is a strided 3x3
    conv of the lowest-resolution branch (official layout: Sequential(Sequential(conv, BN, ReLU)))."""
    layers = [nn.Identity() if a == b else _conv_bn(a, b, 3, 1, relu=True) for a, b in zip(c_in, c_out)]
    layers.append(nn.Sequential(_conv_bn(c_in[-1], c_out[len(c_in)], 3, 2, relu=True)))
    return nn.ModuleList(layers)


class HRNetBackbone(nn.Module):
    """[B, 3, H, W] -> the fused high-resolution branch [B, W, H/4, W/4] (`stride` 4,
    `out_channels` W). `name`: a key of ARCHS.

    Init: Kaiming-normal convolutions and BN 1/0 as torchvision's ResNet, but the last BN of every
    residual block starts at 0 (torchvision's zero_init_residual; Goyal et al. 2017), so each
    block starts as the identity. Without it, an untrained HRNet in eval mode (fresh BN statistics)
    sums its branches up to features ~1e3 (logits ~1e3 at init: first validations, ONNX checks);
    with it ~10. (The official code draws every convolution from N(0, 0.001) and then loads
    ImageNet weights; kpdet trains from scratch unless model.pretrained is set.)"""

    stride = 4

    def __init__(self, name: str):
        super().__init__()
        arch = ARCHS[name]
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _blocks(Bottleneck, 64, arch.stem_planes, arch.stem_blocks)
        widths: tuple[int, ...] = (arch.stem_planes * Bottleneck.expansion,)
        for n, (modules, blocks, new) in enumerate(arch.stages, start=2):
            setattr(self, f"transition{n - 1}", _transition(widths, new))
            last = n == len(arch.stages) + 1
            setattr(self, f"stage{n}", nn.Sequential(*(
                HRModule(new, blocks, 1 if last and m == modules - 1 else len(new)) for m in range(modules))))
            widths = new
        self.num_stages, self.out_channels = len(arch.stages), widths[0]
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                nn.init.zeros_((module.bn3 if isinstance(module, Bottleneck) else module.bn2).weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        xs = [self.layer1(self.relu(self.bn2(self.conv2(x))))]
        for n in range(2, self.num_stages + 2):
            transition = getattr(self, f"transition{n - 1}")
            # existing branches pass through their transition; the new one starts from the lowest
            xs = [t(x) for t, x in zip(transition, xs)] + [transition[-1](xs[-1])]
            xs = getattr(self, f"stage{n}")(xs)
        return xs[0]
