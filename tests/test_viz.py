"""Figure helpers of ``vlic.viz`` that decide what a reader sees."""

from __future__ import annotations

import numpy as np

from vlic.viz import detail_crop


def test_detail_crop_is_a_square_centred_across_from_a_quarter_down():
    img = np.arange(200 * 300).reshape(200, 300)
    c = detail_crop(img)
    assert c.shape == (160, 160)
    assert c[0, 0] == img[10, 70]                   # y = 200 // 4 - 160 // 4 = 10, x = (300 - 160) // 2 = 70
    small = detail_crop(np.zeros((64, 96, 3), np.uint8))
    assert small.shape == (64, 64, 3)               # never larger than the image's short side
    assert detail_crop(img, size=40)[0, 0] == img[40, 130]
