"""Whole-image marks: exact colours where the points are, masked pixels dimmed, captions above."""
import numpy as np
import pytest

from kpdet.vis.whole_image import PALETTE, base_picture, draw_instances, draw_marks, image_row, palette_colour
from tests.vis.test_panels import grey_image


def test_masked_pixels_are_shown_at_half_brightness():
    ignore = np.zeros((32, 24), np.uint8)
    ignore[4:8, 2:6] = 1
    picture = base_picture(grey_image(), ignore)
    assert (picture[4:8, 2:6] == 64).all() and (picture[8:, :] == 128).all()  # mid grey 128 -> 64


def test_a_disc_and_a_cross_in_the_class_colour_centred_on_the_point():
    picture = base_picture(grey_image())
    drawn = draw_marks(picture, [[5, 6], [15.4, 20.6]], [1, 12], "disc")
    assert tuple(drawn[6, 5]) == PALETTE[1] and tuple(drawn[21, 15]) == PALETTE[2]  # 12 cycles to 2
    assert (drawn[6, 8] == 128).all()  # 3 px away: outside the radius-2 disc
    crossed = draw_marks(picture, [[10, 10]], [0], "cross")
    # a tilted cross of 5 px: the centre and the four diagonal arms 2 px out, not the straight neighbours
    for x, y in ((10, 10), (8, 8), (12, 12), (8, 12), (12, 8)):
        assert tuple(crossed[y, x]) == PALETTE[0]
    assert (crossed[10, 12] == 128).all() and (crossed[8, 10] == 128).all()
    assert (picture == 128).all()  # drawn on a copy
    with pytest.raises(ValueError, match="mark must be"):
        draw_marks(picture, [[1, 1]], [0], "star")


def test_image_row_captions_each_picture_and_wraps_after_four():
    pictures = [np.full((10, 8, 3), i * 40, np.uint8) for i in range(5)]
    row = image_row(pictures, [f"{i}" for i in range(5)])
    assert row.shape == (2 * (10 + 13), 4 * 8, 3)
    assert (row[13:23, 8:16] == 40).all() and (row[23 + 13:, 0:8] == 160).all()
    assert palette_colour(10) == PALETTE[0]


def test_instances_keep_their_colour_and_non_finite_keypoints_are_left_out():
    picture = base_picture(grey_image())
    keypoints = np.array([[[4, 4], [4, 14]], [[16, 4], [np.nan, 20]]])
    drawn = draw_instances(picture, keypoints, np.ones((2, 2)), [(0, 1)])
    assert (drawn[4:15, 4] == PALETTE[0]).all()  # instance 0: both discs and the bone
    assert tuple(drawn[4, 16]) == PALETTE[1] and (drawn[7:, 16] == 128).all()  # no bone to a NaN
    assert (draw_marks(picture, [[np.inf, 3], [3, 3]], [0, 0]) != picture).any(-1).sum() == 13  # one disc
