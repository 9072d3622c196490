"""kpdet.Predictor: image px in and out, batching over boxes, bad input, and the checkpoint path."""
import numpy as np
import pytest
import torch
from torch import nn

from kpdet import Predictor
from kpdet.codecs import CODECS, build_codec
from kpdet.data.coco import DatasetError
from kpdet.keypoints import KeypointSpec

INPUT = (64, 64)  # (W, H): heatmaps 16 x 16, stride 4


class DotModel(nn.Module):
    """A 'trained' detector of a red (keypoint 0) and a green (keypoint 1) dot on black: logits are the
    4x4-pooled colour excess of normalised crops, so the heatmap peak sits on the dot."""

    def forward(self, images):
        red, green = images[:, 0], images[:, 1]
        excess = torch.stack([red - green, green - red], 1)
        return 4.0 * nn.functional.avg_pool2d(excess, 4) - 4.0


def dot_predictor(codec="msra", **kwargs) -> Predictor:
    codec = build_codec({"type": codec, "sigma": 1.0}, input_size=INPUT, heatmap_size=(16, 16))
    spec = KeypointSpec(("red", "green"), ((0, 1),), (0, 1), (0.05, 0.05))
    return Predictor(DotModel(), codec, "sigmoid", spec, INPUT, padding=1.25, **kwargs)


def dots_image(red_xy, green_xy, size=(120, 160)) -> np.ndarray:
    """RGB uint8 [H, W, 3], black with 3x3 dots centred on integer pixels (pixel centres at integers)."""
    image = np.zeros((*size, 3), np.uint8)
    for (x, y), channel in ((red_xy, 0), (green_xy, 1)):
        image[y - 1:y + 2, x - 1:x + 2, channel] = 255
    return image


@pytest.mark.parametrize("codec", CODECS.names())
def test_keypoints_come_back_in_image_pixels_for_each_box(codec):
    image = dots_image((50, 40), (70, 60))
    # Two different 40x40 boxes around the dots: crop scale 40 * 1.25 / 64 = 0.78 image px per
    # input px, so one heatmap px is 3.1 image px; argmax + sub-pixel refinement is within ~half of that.
    result = dot_predictor(codec).predict(image, boxes=[[40, 30, 40, 40], [45, 35, 40, 40]])
    assert result["keypoints"].shape == (2, 2, 2) and result["scores"].shape == (2, 2)
    for points in result["keypoints"]:
        np.testing.assert_allclose(points, [[50, 40], [70, 60]], atol=2.0)
    assert (result["scores"] > 0.5).all()  # sigmoid(4 * excess - 4) at a dot, ~0.02 elsewhere


def test_bgr_flag_paths_and_lists(tmp_path):
    import cv2

    image = dots_image((50, 40), (70, 60))
    predictor = dot_predictor()
    box = [[40, 30, 40, 40]]
    rgb = predictor.predict(image, box)["keypoints"]
    swapped = predictor.predict(image, box, bgr=True)["keypoints"]  # red read as blue: green stays
    np.testing.assert_allclose(swapped[0, 1], rgb[0, 1], atol=1e-5)
    assert np.abs(swapped[0, 0] - rgb[0, 0]).max() > 5  # no red dot any more
    cv2.imwrite(str(tmp_path / "dots.png"), image[:, :, ::-1])
    from_file = predictor.predict(str(tmp_path / "dots.png"), box)["keypoints"]
    np.testing.assert_allclose(from_file, rgb, atol=1e-5)
    both = predictor.predict([image, tmp_path / "dots.png"], [box, box + box])
    assert [r["keypoints"].shape[0] for r in both] == [1, 2]
    np.testing.assert_allclose(both[1]["keypoints"][1], rgb[0], atol=1e-5)


def test_batching_over_boxes_does_not_change_results():
    image = dots_image((50, 40), (70, 60))
    boxes = [[40 + i, 30 - i, 40, 40 + 2 * i] for i in range(5)]
    together = dot_predictor(batch_size=32).predict(image, boxes)
    in_twos = dot_predictor(batch_size=2).predict(image, boxes)
    for key in ("keypoints", "scores"):
        np.testing.assert_allclose(together[key], in_twos[key], atol=1e-5)


def test_whole_image_without_boxes_and_flip_test():
    image = dots_image((30, 20), (40, 30), size=(48, 64))
    # whole 64x48 image: crop 80 x 80 px (64 * 1.25, square input) -> 1.25 image px per input px.
    plain = dot_predictor().predict(image)
    np.testing.assert_allclose(plain["keypoints"][0], [[30, 20], [40, 30]], atol=3.0)
    # red and green do not swap under a mirror (flip_index identity): flip test finds the same dots.
    flipped = dot_predictor(flip_test=True).predict(image, heatmaps=True)
    np.testing.assert_allclose(flipped["keypoints"], plain["keypoints"], atol=1.5)
    assert flipped["heatmaps"].shape == (1, 2, 16, 16)


def test_zero_boxes_give_empty_results_of_the_right_shapes():
    result = dot_predictor().predict(dots_image((50, 40), (70, 60)), boxes=[], heatmaps=True)
    assert result["keypoints"].shape == (0, 2, 2) and result["scores"].shape == (0, 2)
    assert result["heatmaps"].shape == (0, 2, 16, 16)


@pytest.mark.parametrize("box, message", [
    ([10, 10, 0, 20], r"box 1 = \[10.0, 10.0, 0.0, 20.0\] has zero size"),
    ([200, 10, 20, 20], r"box 1 = \[200.0, 10.0, 20.0, 20.0\] lies outside the 160x120 image"),
    ([-50, 10, 49.5, 20], r"lies outside"),  # ends at x = -0.5, the left edge of pixel 0
    ([1, 2, float("nan"), 3], r"4 finite numbers"),
])
def test_bad_boxes_are_named(box, message):
    with pytest.raises(ValueError, match=message):
        dot_predictor().predict(dots_image((50, 40), (70, 60)), boxes=[[40, 30, 40, 40], box])


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(DatasetError, match="notes.png"):
        dot_predictor().predict([dots_image((50, 40), (70, 60)), bad])
    with pytest.raises(ValueError, match="uint8"):
        dot_predictor().predict(np.zeros((10, 10, 3), np.float32))


def test_checkpoint_predictor_reproduces_the_evaluation_pipeline(tiny_checkpoint, tiny_synthetic):
    """Predictor.predict(file, box) == the dataset's crop -> make_predictor -> crop_to_image."""
    from kpdet.build import load_checkpoint
    from kpdet.engine.builders import build_split
    from kpdet.inference import config_from_checkpoint
    from kpdet.predict import crop_to_image

    predictor = Predictor.from_checkpoint(tiny_checkpoint, device="cpu")
    dataset = build_split(config_from_checkpoint(load_checkpoint(tiny_checkpoint)), "val", train=False)
    sample = dataset[0]
    keypoints, scores, _ = predictor.inner(False)(sample["image"][None])
    expected = crop_to_image(keypoints, sample["crop_to_image"][None])[0].numpy()
    image_info = dataset.coco.loadImgs(int(sample["image_id"]))[0]
    path = tiny_synthetic / "images" / image_info["file_name"]
    result = predictor.predict(path, boxes=[sample["bbox"].tolist()])
    assert result["keypoints"].shape == (1, 17, 2)
    np.testing.assert_allclose(result["keypoints"][0], expected, atol=1e-3)
    np.testing.assert_allclose(result["scores"][0], scores[0].numpy(), atol=1e-5)


def test_checkpoint_of_another_head_or_keypoint_count_is_refused(tiny_checkpoint, tmp_path):
    from kpdet.config import load_config

    cfg = load_config("configs/smoke.yaml", ["model.head_conv=16"])
    with pytest.raises(ValueError, match=r"does not fit the model of the given config.*only in the config"):
        Predictor.from_checkpoint(tiny_checkpoint, cfg, device="cpu")
    state = torch.load(tiny_checkpoint, weights_only=True)
    final = [k for k in state["model"] if k.endswith(".weight")][-1]
    state["model"][final] = state["model"][final][:5]  # a 5-keypoint head
    state["model"][final.replace("weight", "bias")] = state["model"][final.replace("weight", "bias")][:5]
    torch.save(state, tmp_path / "five.pt")
    with pytest.raises(ValueError, match=rf"{final}: \[5, .*\] in the checkpoint, \[17, .*\] for the config"):
        Predictor.from_checkpoint(tmp_path / "five.pt", device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_predictor_on_cuda_matches_cpu():
    image = dots_image((50, 40), (70, 60))
    boxes = [[40, 30, 40, 40], [45, 35, 40, 40]]
    on_cpu = dot_predictor().predict(image, boxes)
    on_gpu = dot_predictor(device="cuda").predict(image, boxes)
    for key in ("keypoints", "scores"):
        np.testing.assert_allclose(on_gpu[key], on_cpu[key], atol=1e-3)
