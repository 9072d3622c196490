import numpy as np

from kpdet.vis import draw_keypoints, heatmap_overlay, prediction_panel


def test_keypoints_are_drawn_where_they_are_and_only_when_visible():
    image = np.zeros((20, 20, 3), np.uint8)
    drawn = draw_keypoints(image, np.array([[5.0, 6.0], [15.0, 15.0]]), np.array([True, False]), [(0, 1)],
                           colour=(255, 0, 0), radius=1)
    assert tuple(drawn[6, 5]) == (255, 0, 0)  # row y=6, column x=5
    assert drawn[15, 15].sum() == 0 and drawn[10, 10].sum() == 0  # invisible: no dot, no limb
    assert image.sum() == 0  # the input is not modified


def test_overlay_uses_the_absolute_score_scale():
    image = np.zeros((8, 8, 3), np.uint8)
    flat = heatmap_overlay(image, np.full((2, 4, 4), 0.1, np.float32), alpha=1.0)
    peaked = np.full((2, 4, 4), 0.1, np.float32)
    peaked[1, 0, 0] = 1.0
    hot = heatmap_overlay(image, peaked, alpha=1.0)
    # a flat 0.1 map stays uniformly cold (JET blue), it is not stretched into a false peak
    assert (flat == flat[0, 0]).all() and flat[0, 0, 2] > flat[0, 0, 0]
    assert hot[0, 0, 0] > hot[0, 0, 2]  # score 1.0 is red


def test_panel_layout():
    images = np.zeros((3, 3, 16, 12), np.float32)
    keypoints = np.full((3, 2, 2), 4.0)
    panel = prediction_panel(images, keypoints, np.ones((3, 2)), keypoints, np.zeros((3, 2, 4, 3)), [(0, 1)])
    assert panel.shape == (3 * 16, 2 * 12, 3) and panel.dtype == np.uint8
