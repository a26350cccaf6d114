"""JPEG, WebP and AVIF at a target bit rate: the search lands at or under the target, with the highest quality."""

from __future__ import annotations

import numpy as np
import pytest

from vlic.codec.baselines import BaselineCodec


@pytest.fixture(scope="module")
def photo():
    from skimage import data  # a packaged photograph (not one of the study's holdout photos' files)

    return np.ascontiguousarray(data.chelsea()[:192, :256])


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_target_bpp_is_met_with_the_highest_quality(photo, name):
    codec = BaselineCodec(name)
    r = codec.compress(photo, bpp=0.8)
    assert r.met_target and r.bpp <= 0.8
    assert r.bpp == pytest.approx(8 * len(r.data) / (192 * 256))
    if r.quality < codec.q_max:  # one quality step more would overshoot (up to non-monotone wiggles)
        assert codec.compress(photo, quality=r.quality + 1).bpp > 0.8 * 0.97
    out = codec.decompress(r.data)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - photo).mean() < 20


def test_unreachable_target_returns_lowest_quality_and_says_so(photo):
    r = BaselineCodec("jpeg").compress(photo, bpp=0.01)
    assert not r.met_target and r.quality == 1 and r.bpp > 0.01


def test_errors_name_the_problem(photo):
    with pytest.raises(ValueError, match="unknown baseline codec 'bpg'"):
        BaselineCodec("bpg")
    with pytest.raises(ValueError, match="exactly one of"):
        BaselineCodec("jpeg").compress(photo)
    with pytest.raises(ValueError, match="uint8 RGB"):
        BaselineCodec("webp").compress(photo.astype(np.float32), bpp=1.0)
