"""From network output to keypoints: the loss's activation, optional flip testing, the codec's decode
(heatmaps: HeatmapPredictor; x/y bins: OrdinalPredictor; `make_predictor` picks by codec)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def apply_activation(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Heatmap scores from head output [B, K, H, W], per the loss's `activation`."""
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    if activation == "identity":
        return logits
    raise ValueError(f"unknown activation {activation!r}; known: sigmoid, softmax, identity")


def crop_to_image(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Input-crop px [B, K, 2] -> image px with per-sample affine matrices [B, 2, 3]."""
    return points @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


class HeatmapPredictor:
    """Wraps model + codec + activation: normalised crops [B, 3, H, W] -> keypoints in crop px.

    flip_index: keypoint order after a horizontal flip; when given, the
    heatmaps of the mirrored crop (mapped back by `flip_heatmaps`) are averaged
    with the original ones (flip testing).
    """

    def __init__(self, model: nn.Module, codec, activation: str,
                 flip_index: Sequence[int] | None = None, flip_heatmaps: Callable | None = None):
        self.model = model
        self.codec = codec
        self.activation = activation
        self.flip_index = list(flip_index) if flip_index is not None else None
        self.flip_heatmaps = flip_heatmaps

    @torch.no_grad()
    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """Scores [B, K, h, w] in float32."""
        scores = apply_activation(self.model(images).float(), self.activation)
        if self.flip_index is not None:
            flipped = apply_activation(self.model(images.flip(-1)).float(), self.activation)
            scores = 0.5 * (scores + self.flip_heatmaps(flipped, self.flip_index))
        return scores

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (keypoints [B, K, 2] crop px, confidences [B, K], scores [B, K, h, w])."""
        scores = self.heatmaps(images)
        keypoints, confidences = self.codec.decode(scores)
        return keypoints, confidences, scores


class OffsetPredictor(HeatmapPredictor):
    """HeatmapPredictor for a head with offsets (`model.offset`, kpdet.codecs.offset): the activation
    applies to the C heatmap channels; the codec decodes argmax + the offset there. With flip testing
    the heatmaps are averaged with the mirrored crop's as usual; the offsets are the original
    crop's (a mirrored offset map would need its dx negated and the codec's flip shift).
    """

    @torch.no_grad()
    def heatmaps_and_offsets(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores [B, C, h, w], offsets [B, C, 2, h, w]) in float32."""
        from kpdet.codecs.offset import split_outputs

        logits, offsets = split_outputs(self.model(images).float())
        scores = apply_activation(logits, self.activation)
        if self.flip_index is not None:
            flipped = apply_activation(split_outputs(self.model(images.flip(-1)).float())[0], self.activation)
            scores = 0.5 * (scores + self.flip_heatmaps(flipped, self.flip_index))
        return scores, offsets

    @torch.no_grad()
    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        return self.heatmaps_and_offsets(images)[0]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (keypoints [B, K, 2] crop px, confidences [B, K], scores [B, K, h, w])."""
        scores, offsets = self.heatmaps_and_offsets(images)
        keypoints, confidences = self.codec.decode(torch.cat([scores, offsets.flatten(1, 2)], 1))
        return keypoints, confidences, scores


class PosePredictor:
    """Multi-instance pose (data.bottom_up.task=pose; kpdet.codecs.pose): letterboxed whole images
    [B, 3, H, W] -> every instance found. `decode` holds decode_pose's keyword arguments.

    flip_index (the keypoint spec's, eval.flip_test): flip testing as CenterNet's multi_pose
    `flip_test`. The mirrored image's outputs are mapped back by `kpdet.codecs.pose.flip_pose_back`
    (keypoint maps: channel flip_index[k]; centre map: itself; displacements: joints swapped, dx
    negated; all mirrored and moved by the codec's flip shift) and averaged with the original's:
    keypoint and centre scores after the activation, displacements as vectors. Offsets
    (model.offset) are the unflipped pass's, as in CenterNet, whose flip test averages hm, hm_hp
    and hps but reads reg and hp_offset from the original image only. Unlike CenterNet's plain
    mirror, the maps are moved by the codec's flip shift (+0.75 px for msra at stride 4), derived in
    flip_pose_back's docstring.
    """

    def __init__(self, model: nn.Module, codec, activation: str, num_keypoints: int,
                 flip_index: Sequence[int] | None = None, **decode):
        self.model, self.codec, self.activation = model, codec, activation
        self.num_keypoints, self.decode = num_keypoints, decode
        self.flip_index = list(flip_index) if flip_index is not None else None
        if self.flip_index is not None and len(self.flip_index) != num_keypoints:
            raise ValueError(f"flip_index has {len(self.flip_index)} entries for {num_keypoints} keypoints")

    def _pass(self, images: torch.Tensor):
        """One forward pass -> (scores [B, K + 1, h, w], offsets or None, displacements [B, K, 2, h, w])."""
        from kpdet.codecs.offset import split_outputs
        from kpdet.codecs.pose import split_pose_outputs

        heat, displacements = split_pose_outputs(self.model(images).float(), self.num_keypoints)
        offsets = None
        if getattr(self.codec, "with_offsets", False):
            heat, offsets = split_outputs(heat)
        return apply_activation(heat, self.activation), offsets, displacements

    @torch.no_grad()
    def outputs(self, images: torch.Tensor):
        """(scores [B, K + 1, h, w], offsets [B, K + 1, 2, h, w] or None, displacements [B, K, 2, h, w]);
        with flip_index, scores and displacements averaged with the mirrored image's (class docstring)."""
        from kpdet.codecs.pose import flip_pose_back

        scores, offsets, displacements = self._pass(images)
        if self.flip_index is not None:
            mirror_scores, _, mirror_displacements = self._pass(images.flip(-1))
            back_scores, back_displacements = flip_pose_back(self.codec, mirror_scores, mirror_displacements,
                                                             self.flip_index)
            scores = 0.5 * (scores + back_scores)
            displacements = 0.5 * (displacements + back_displacements)
        return scores, offsets, displacements

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """-> decode_pose's dict: keypoints [B, N, K, 2] input px, scores [B, N, K], instance_scores and
        keep [B, N]."""
        from kpdet.codecs.pose import decode_pose

        return decode_pose(self.codec, *self.outputs(images), **self.decode)


class OrdinalPredictor:
    """Wraps model + ordinal_xy codec: normalised crops [B, 3, H, W] -> keypoints in crop px, with the
    call protocol of HeatmapPredictor. The model gives x and y logits; softmax over bins, optional
    flip test (the mirrored crop's distributions mapped back by `codec.flip_outputs`, then
    averaged), `codec.decode`.
    """

    def __init__(self, model: nn.Module, codec, flip_index: Sequence[int] | None = None):
        self.model = model
        self.codec = codec
        self.flip_index = list(flip_index) if flip_index is not None else None

    @torch.no_grad()
    def distributions(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p_x [B, K, N_x], p_y [B, K, N_y]) in float32, softmax over bins."""
        probs = tuple(torch.softmax(z.float(), -1) for z in self.model(images))
        if self.flip_index is not None:
            flipped = tuple(torch.softmax(z.float(), -1) for z in self.model(images.flip(-1)))
            back = self.codec.flip_outputs(flipped, self.flip_index)
            probs = tuple(0.5 * (p + q) for p, q in zip(probs, back))
        return probs

    @torch.no_grad()
    def __call__(self, images: torch.Tensor):
        """-> (keypoints [B, K, 2] crop px, confidences [B, K], (p_x [B, K, N_x], p_y [B, K, N_y]))."""
        probs = self.distributions(images)
        keypoints, confidences = self.codec.decode(probs)
        return keypoints, confidences, probs


def make_predictor(model, codec, activation: str, flip_index: Sequence[int] | None = None):
    """The predictor for a model's head: `predictor(crops) -> (keypoints [B, K, 2] crop px,
    confidences [B, K], raw outputs)`. The one place that picks the predictor class: by the
    codec's (= the head's) target kind, OrdinalPredictor for ordinal codecs, OffsetPredictor for
    heatmaps with offsets (model.offset), else HeatmapPredictor.
    With flip_index, flip testing (where the codec can map outputs back)."""
    if getattr(codec, "target_kind", "heatmap") == "ordinal":
        if activation != "softmax":
            raise ValueError(f"an ordinal codec needs a softmax loss over bins, got activation "
                             f"{activation!r}")
        return OrdinalPredictor(model, codec, flip_index)
    flip = getattr(codec, "flip_heatmaps", None) if flip_index is not None else None
    kind = OffsetPredictor if getattr(codec, "with_offsets", False) else HeatmapPredictor
    return kind(model, codec, activation, flip_index if flip else None, flip)


def crop_for_model(image, box, input_size: tuple[int, int], padding: float = 1.25):
    """An RGB uint8 image [H, W, 3] and a box (x, y, w, h) -> (normalised crop [3, H_in, W_in],
    crop_to_image [2, 3]), exactly as the evaluation pipeline crops an instance."""
    from kpdet.data import transforms as T

    center, scale = T.box_to_center_scale(box, input_size[0] / input_size[1], padding)
    matrix = T.crop_matrix(center, scale, input_size)
    crop = T.warp_image(image, matrix, input_size)
    return (torch.from_numpy(T.normalize_image(crop)),
            torch.from_numpy(T.invert_affine(matrix).astype("float32")))


def predict_boxes(predictor: HeatmapPredictor, image, boxes, input_size, padding: float = 1.25,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints [N, K, 2] in image px and confidences [N, K] for N boxes (x, y, w, h) in one image."""
    crops, affines = zip(*(crop_for_model(image, box, input_size, padding) for box in boxes))
    keypoints, confidences, _ = predictor(torch.stack(crops).to(device))
    return crop_to_image(keypoints.cpu(), torch.stack(affines)), confidences.cpu()
