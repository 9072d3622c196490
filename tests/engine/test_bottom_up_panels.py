"""Bottom-up TensorBoard panels show what they claim: ground-truth points and skeletons at their pixels,
one cross per decoded peak, grouped skeletons joining the keypoints of one instance only; and a run
writes them to its event file."""
import numpy as np
import pytest
import torch

from kpdet.build import pose_decoding
from kpdet.engine import builders
from kpdet.engine.bottom_up_panels import log_bottom_up_panels
from kpdet.engine.runner import fit
from kpdet.predict import HeatmapPredictor, PosePredictor
from kpdet.vis.whole_image import PALETTE, base_picture
from tests.engine.test_bottom_up_resume import config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CAPTION = 13  # px of caption strip above each picture


class Recorder:
    """The logger's image calls, by tag."""

    def __init__(self):
        self.images = {}

    def image(self, tag, step, picture):
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3, tag
        self.images[tag] = picture


class Fixed(torch.nn.Module):
    """A network whose output is `logits` [1, C, 16, 16] for any image: known peaks."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, images):
        return self.logits.expand(len(images), -1, -1, -1)


def cell(panel, index, size=64):
    """Picture `index` of a 4-column image_row, below its caption."""
    row, column = divmod(index, 4)
    top = row * (size + CAPTION) + CAPTION
    return panel[top:top + size, column * size:(column + 1) * size]


def changed(picture, base):
    return (picture != base).any(-1)


def setup(task, root, tmp_path):
    cfg = config(task, root, tmp_path, "model.offset=false")  # 64 x 64 input, 16 x 16 heatmaps (msra)
    dataset = builders.build_split(cfg, "val", train=False)
    return cfg, dataset, builders.build_codec_from_cfg(cfg)


def test_points_panels_show_the_ground_truth_and_one_cross_per_decoded_peak(tiny_points, tmp_path):
    cfg, dataset, codec = setup("points", tiny_points, tmp_path)
    logits = torch.full((1, 3, 16, 16), -5.0)  # sigmoid 0.007: below the 0.1 threshold
    # class 0 at heatmap (3, 5), class 2 at (10, 12), class 1 at (12, 3); msra input px = 4 x heatmap px
    # (flat neighbours: no quarter-pixel shift) -> crosses at input (12, 20), (40, 48), (48, 12)
    logits[0, 0, 5, 3] = logits[0, 2, 12, 10] = logits[0, 1, 3, 12] = 5.0
    log = Recorder()
    log_bottom_up_panels(log, HeatmapPredictor(Fixed(logits), codec, "sigmoid"), dataset, 0, 2, "cpu",
                         pose_decoding(cfg))
    assert set(log.images) == {"val/ground_truth", "val/peaks", "val/heatmaps"}
    for b in range(2):
        sample = dataset[b]
        base = base_picture(sample["image"].numpy(), sample["ignore"].numpy())
        # ground truth: a disc of the class colour on every labelled point, nothing elsewhere
        truth = cell(log.images["val/ground_truth"], b)
        real = sample["labels"] >= 0
        points, labels = sample["keypoints"][real].numpy(), sample["labels"][real].numpy()
        assert len(points) > 0
        for (x, y), label in zip(points, labels):
            assert tuple(truth[int(round(y)), int(round(x))]) == PALETTE[label]
        ys, xs = np.nonzero(changed(truth, base))
        nearest = np.linalg.norm(np.stack([xs, ys], 1)[:, None] - points.round()[None], axis=-1).min(1)
        assert nearest.max() <= 2 * 2 ** 0.5  # only disc pixels (radius 2) changed
        # peaks: three crosses, each centred on its peak in its channel's colour
        peaks = cell(log.images["val/peaks"], b)
        import cv2

        count, _ = cv2.connectedComponents(changed(peaks, base).astype(np.uint8), connectivity=8)
        assert count - 1 == 3
        for (x, y), channel in (((12, 20), 0), ((40, 48), 2), ((48, 12), 1)):
            assert tuple(peaks[y, x]) == tuple(peaks[y + 2, x + 2]) == PALETTE[channel]
    # heatmaps: one [prediction | target] cell per class, image 0; JET makes a peak red: each class's
    # prediction is reddest at its one peak, its target at one of image 0's points of that class
    heatmaps = log.images["val/heatmaps"]
    assert heatmaps.shape == (64 + CAPTION, 3 * 2 * 64, 3)
    sample = dataset[0]
    real = sample["labels"] >= 0
    points, labels = sample["keypoints"][real].numpy(), sample["labels"][real].numpy()
    for channel, peak in ((0, (12, 20)), (1, (48, 12)), (2, (40, 48))):
        pair = heatmaps[CAPTION:, channel * 128:(channel + 1) * 128].astype(int)
        for half, wanted in ((pair[:, :64], [peak]), (pair[:, 64:], points[labels == channel])):
            if len(wanted):
                redness = half[..., 0] - half[..., 2]
                y, x = np.unravel_index(np.argmax(redness), redness.shape)
                assert np.linalg.norm(np.array(wanted) - (x, y), axis=1).min() <= 2, (channel, x, y)


def test_pose_panels_group_each_instance_in_its_own_colour(dumbbells, tmp_path):
    cfg, dataset, codec = setup("pose", dumbbells, tmp_path)
    heat = torch.full((1, 3, 16, 16), -5.0)  # head map, tail map, centre map (last)
    disp = torch.zeros(1, 2, 2, 16, 16)  # keypoint k: (dx, dy) in heatmap px, read at the centre pixel
    # instance A: centre (4, 4) (score higher: instance 0), head (2, 4), tail (6, 4) heatmap px
    # instance B: centre (10, 11), head (10, 8), tail (10, 14)
    heat[0, 2, 4, 4], heat[0, 2, 11, 10] = 6.0, 5.0
    heat[0, 0, 4, 2] = heat[0, 1, 4, 6] = heat[0, 0, 8, 10] = heat[0, 1, 14, 10] = 5.0
    disp[0, 0, :, 4, 4], disp[0, 1, :, 4, 4] = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 0.0])
    disp[0, 0, :, 11, 10], disp[0, 1, :, 11, 10] = torch.tensor([0.0, -3.0]), torch.tensor([0.0, 3.0])
    model = Fixed(torch.cat([heat, disp.flatten(1, 2)], 1))
    log = Recorder()
    pose = PosePredictor(model, codec, "sigmoid", 2, **pose_decoding(cfg))
    log_bottom_up_panels(log, pose, dataset, 0, 2, "cpu", pose_decoding(cfg))
    assert set(log.images) == {"val/ground_truth", "val/peaks", "val/skeletons", "val/heatmaps"}
    sample = dataset[0]
    base = base_picture(sample["image"].numpy(), sample["ignore"].numpy())
    # skeletons (input px = 4 x heatmap px): A's bone (8, 16)-(24, 16) in colour 0, B's (40, 32)-(40, 56)
    # in colour 1; the ways between a keypoint of A and one of B cross nothing drawn: no bone joins A and B
    skeletons = cell(log.images["val/skeletons"], 0)
    assert (skeletons[16, 8:25] == PALETTE[0]).all() and (skeletons[32:57, 40] == PALETTE[1]).all()
    for a in ((8, 16), (24, 16)):
        for b in ((40, 32), (40, 56)):
            between = np.array(a) + np.linspace(0, 1, 100)[:, None] * (np.array(b) - a)
            ends = np.linalg.norm(between - a, axis=1).clip(max=np.linalg.norm(between - b, axis=1))
            xs, ys = np.round(between[ends > 5]).astype(int).T  # more than 5 px from either keypoint
            assert not changed(skeletons, base)[ys, xs].any(), (a, b)
    # peaks: 4 keypoint peaks + 2 centre peaks, one cross each; the centres' in the centre map's colour
    import cv2

    peaks = cell(log.images["val/peaks"], 0)
    count, _ = cv2.connectedComponents(changed(peaks, base).astype(np.uint8), connectivity=8)
    assert count - 1 == 6 and tuple(peaks[16, 16]) == tuple(peaks[44, 40]) == PALETTE[2]
    # ground truth: each present instance's keypoints in its own colour
    truth = cell(log.images["val/ground_truth"], 0)
    present = sample["present"] > 0
    for n, keypoints in enumerate(sample["keypoints"][present].numpy()):
        for x, y in keypoints:
            assert tuple(truth[int(round(y)), int(round(x))]) == PALETTE[n]
    # heatmaps: head, tail and centre, [prediction | target] each
    assert log.images["val/heatmaps"].shape == (64 + CAPTION, 3 * 2 * 64, 3)


@pytest.mark.parametrize("task,fixture", [("points", "tiny_points"), ("pose", "dumbbells")])
def test_a_bottom_up_run_writes_its_panels_to_the_event_file(task, fixture, request, tmp_path):
    import cv2
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    root = request.getfixturevalue(fixture)
    fit(config(task, root, tmp_path, "train.epochs=1", "train.max_iters_per_epoch=1", "data.num_workers=0"))
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={IMAGES: 0})
    events.Reload()
    wanted = {"val/ground_truth", "val/peaks", "val/heatmaps", *(["val/skeletons"] if task == "pose" else [])}
    assert wanted <= set(events.Tags()["images"])
    stored = events.Images("val/ground_truth")[-1]
    truth = cv2.imdecode(np.frombuffer(stored.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert truth.shape == (64 + CAPTION, 2 * 64, 3)  # eval.vis_images=2 images side by side
    sample = builders.build_split(config(task, root, tmp_path), "val", train=False)[1]
    shown = sample["labels"] >= 0 if task == "points" else sample["present"] > 0
    keypoints = sample["keypoints"][shown].reshape(len(shown.nonzero()), -1, 2).numpy()
    for n, instance in enumerate(keypoints):  # PNG is lossless: the exact colours
        for x, y in instance:
            colour = PALETTE[int(sample["labels"][shown][n]) if task == "points" else n]
            assert tuple(cell(truth, 1)[int(round(y)), int(round(x))]) == colour
