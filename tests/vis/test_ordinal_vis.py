import numpy as np

from kpdet.vis import distribution_strips


def test_strips_colour_by_probability_and_tick_the_truth():
    px = np.zeros((2, 5), np.float32)
    px[0, 2] = 1.0  # keypoint 0: all mass in x bin 2
    px[1] = 0.2  # keypoint 1: flat
    py = np.full((2, 3), 1 / 3, np.float32)
    gt = np.array([[2.0, 1.0], [np.nan, np.nan]])
    picture = distribution_strips(px, py, gt, peak=1.0, row_height=4)
    assert picture.shape == (2 * 4, 5 + 4 + 3, 3) and picture.dtype == np.uint8
    # the GT tick (white) overwrites x bin 2 in row 0, except the row's last line, which shows the
    # JET colour of p = 1: dark red (R high, B 0)
    assert picture[0, 2].tolist() == [255, 255, 255]
    r, g, b = picture[3, 2].tolist()
    assert r > 100 and g == 0 and b == 0
    # p = 0 is dark blue; the flat 0.2 is bluish; no tick where GT is NaN
    assert picture[3, 0, 2] > 100 and picture[3, 0, 0] == 0
    assert picture[4:, :5, 2].min() > 200 and (picture[4:] != 255).any(-1).all()
