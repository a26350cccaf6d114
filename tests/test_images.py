"""vlic.images: every input mode becomes RGB uint8, conversions are reported, bad files fail with a named error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlic.images import ImageReadError, load_rgb, resize_max_side, save_png


def test_rgb_png_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    path = save_png(px, tmp_path / "a.png")
    got = load_rgb(path)
    assert np.array_equal(got.pixels, px)
    assert got.conversions == ()
    assert (got.width, got.height) == (23, 17)


def test_grayscale_is_replicated_and_said(tmp_path):
    Image.fromarray(np.full((4, 5), 77, np.uint8), mode="L").save(tmp_path / "g.png")
    got = load_rgb(tmp_path / "g.png")
    assert got.pixels.shape == (4, 5, 3) and (got.pixels == 77).all()
    assert got.source_mode == "L"
    assert any("grayscale" in c for c in got.conversions)


def test_sixteen_bit_is_scaled_to_eight(tmp_path):
    a = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "d.png")
    got = load_rgb(tmp_path / "d.png")
    assert got.pixels[..., 0].tolist() == [[0, 255], [128, 1]]
    assert any("8-bit" in c for c in got.conversions)


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)
    a[..., 0] = 200
    a[0, 0, 3] = 255  # opaque red-ish pixel, the others fully transparent
    Image.fromarray(a, mode="RGBA").save(tmp_path / "t.png")
    got = load_rgb(tmp_path / "t.png")
    assert got.pixels[0, 0].tolist() == [200, 0, 0]
    assert got.pixels[1, 1].tolist() == [255, 255, 255]
    assert any("alpha" in c for c in got.conversions)


def test_palette_and_cmyk_are_converted(tmp_path):
    Image.new("P", (3, 3), 5).save(tmp_path / "p.png")
    Image.new("CMYK", (3, 3), (0, 0, 0, 0)).save(tmp_path / "c.jpg")
    assert load_rgb(tmp_path / "p.png").pixels.shape == (3, 3, 3)
    cmyk = load_rgb(tmp_path / "c.jpg")
    assert cmyk.pixels.shape == (3, 3, 3) and any("CMYK" in c for c in cmyk.conversions)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (4, 2), (10, 20, 30))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif)
    got = load_rgb(tmp_path / "r.jpg")
    assert got.pixels.shape[:2] == (4, 2)
    assert "EXIF orientation applied" in got.conversions


@pytest.mark.parametrize(
    "content, expected",
    [(b"", "empty"), (b"not an image at all", "not in a format"), (None, "does not exist")],
)
def test_bad_files_fail_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=expected) as e:
        load_rgb(path)
    assert "bad.png" in str(e.value)


def test_truncated_png_fails_cleanly(tmp_path):
    path = save_png(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8), tmp_path / "x.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="x.png"):
        load_rgb(path)


def test_resize_max_side_keeps_aspect_and_never_upscales():
    px = np.zeros((300, 451, 3), np.uint8)
    assert resize_max_side(px, 200).shape == (133, 200, 3)
    assert resize_max_side(px, 1000) is px
    assert resize_max_side(px, None) is px


def test_pixels_to_tensor_round_trip_and_the_layout_of_the_input_does_not_matter():
    from vlic.images import to_pixels, to_tensor

    px = np.random.default_rng(0).integers(0, 256, (2, 9, 7, 3), dtype=np.uint8)
    for value_range in ("signed", "unit"):
        t = to_tensor(px, value_range)
        assert t.shape == (2, 3, 9, 7) and float(t.min()) >= (-1 if value_range == "signed" else 0)
        np.testing.assert_array_equal(to_pixels(t, value_range), px)
        np.testing.assert_array_equal(to_pixels(to_tensor(px[0], value_range)[0], value_range), px[0])
    transposed = np.ascontiguousarray(px.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)   # same values, other strides
    a, b = to_tensor(px, "unit"), to_tensor(list(transposed), "unit")
    assert a.stride() == b.stride() and bool((a == b).all())
    with pytest.raises(ValueError, match="uint8 RGB"):
        to_tensor(px.astype(np.float32))
