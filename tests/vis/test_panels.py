"""TensorBoard panels: shapes, and pixels that show what they claim."""
import numpy as np

from kpdet.vis.draw import GT_COLOUR, IMAGENET_MEAN, IMAGENET_STD, PRED_COLOUR
from kpdet.vis.panels import keypoint_heatmaps, pck_bars, worst_samples


def grey_image(h=32, w=24) -> np.ndarray:
    """A normalised crop that denormalises to mid grey (128)."""
    return ((np.full((h, w, 3), 128 / 255, np.float32) - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def test_keypoint_heatmaps_put_prediction_left_of_target_in_one_cell_per_keypoint():
    scores, targets = np.zeros((5, 8, 6), np.float32), np.zeros((5, 8, 6), np.float32)
    targets[3, 4, 3] = 1.0  # keypoint 3: target peak at heatmap (x=3, y=4), prediction flat
    panel = keypoint_heatmaps(grey_image(), scores, targets, [f"k{i}" for i in range(5)], columns=2)
    assert panel.shape == (3 * (32 + 13), 2 * 2 * 24, 3) and panel.dtype == np.uint8  # 5 cells -> 3 rows x 2
    cell = panel[1 * 45 + 13:2 * 45, 48:96]  # row 1, column 1 = keypoint 3, below its 13 px caption
    pred, target = cell[:, :24].astype(int), cell[:, 24:].astype(int)
    assert np.ptp(pred[..., 0]) == 0  # flat prediction: one colour
    # JET of a peak is red: the target half is reddest near (x=3, y=4) * 4 px/heatmap px = (12, 16)
    redness = target[..., 0] - target[..., 2]
    y, x = np.unravel_index(np.argmax(redness), redness.shape)
    assert abs(x - 13.5) <= 2 and abs(y - 17.5) <= 2
    assert panel[2 * 45:, 48:].max() == 0  # the sixth cell is black padding


def test_worst_samples_draw_gt_green_and_prediction_red_side_by_side():
    images = np.stack([grey_image(), grey_image()])
    gt = np.array([[[5.0, 5.0]], [[10.0, 20.0]]])
    pred = np.array([[[18.0, 25.0]], [[10.0, 20.0]]])
    panel = worst_samples(images, gt, np.ones((2, 1)), pred, np.array([24.0, 0.0]), np.array([7, 9]), [])
    assert panel.shape == (13 + 32, 2 * 24, 3)
    crop0 = panel[13:, :24]
    assert tuple(crop0[5, 5]) == GT_COLOUR and tuple(crop0[25, 18]) == PRED_COLOUR
    assert panel[:13, :24].max() > 150 and panel[:13, 24:].max() > 150  # a caption over each crop


def test_pck_bars_are_proportional_to_the_values():
    bars = pck_bars([1.0, 0.25, float("nan")], ["a", "b", "c"], bar=10, height=100, label_height=40)
    assert bars.shape == (140, 30, 3)
    coloured = (bars[:100] != 255).any(axis=2)  # bar pixels inside the chart
    heights = [int(coloured[:, i * 10 + 5].sum()) for i in range(3)]
    assert heights == [100, 25, 0]
