import numpy as np
import pytest
import torch
from PIL import Image

from dipsearch.errors import DipsearchError
from dipsearch.store.imageio import center_crop, crop_to_multiple, load_image, save_image


def smooth(c: int = 3, h: int = 32, w: int = 40) -> torch.Tensor:
    """Gradients plus a bright square: smooth content with one edge, values in [0, 1]."""
    y = torch.linspace(0, 1, h).view(h, 1)
    x = torch.linspace(0, 1, w).view(1, w)
    chans = [(0.2 + 0.6 * (k * y + (c - k) * x) / c).expand(h, w) for k in range(c)]
    img = torch.stack(chans).unsqueeze(0).clone()
    img[..., h // 4 : h // 2, w // 4 : w // 2] = 0.95
    return img


def test_rgb_round_trip_is_exact_to_8_bits(tmp_path):
    img = smooth(3)
    save_image(img, tmp_path / "a.png")
    back = load_image(tmp_path / "a.png")
    assert back.shape == (1, 3, 32, 40) and back.dtype == torch.float32
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6


def test_grey_round_trip_and_3d_input(tmp_path):
    img = smooth(1)
    save_image(img[0], tmp_path / "g.png")  # CxHxW accepted
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L"
    back = load_image(tmp_path / "g.png")
    assert back.shape == (1, 1, 32, 40)
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6


def test_save_clamps_and_honours_format_for_odd_suffix(tmp_path):
    img = smooth(3) * 3 - 1  # out of range on both sides
    target = tmp_path / "out.png.tmp"
    save_image(img, target)
    with Image.open(target) as im:
        assert im.format == "PNG"
    back = load_image(target)
    assert back.min() == 0 and back.max() == 1
    save_image(smooth(3), tmp_path / "x.tmp", format="PNG")
    with Image.open(tmp_path / "x.tmp") as im:
        assert im.format == "PNG"


def test_rgba_warns_and_drops_alpha(tmp_path):
    arr = (smooth(3)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    rgba = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha"):
        img = load_image(tmp_path / "a.png")
    assert img.shape == (1, 3, 32, 40)
    assert torch.allclose(img[0].permute(1, 2, 0), torch.from_numpy(arr).float() / 255)


def test_la_is_grey_and_palette_is_rgb(tmp_path):
    Image.new("LA", (8, 6), (200, 50)).save(tmp_path / "la.png")
    la = load_image(tmp_path / "la.png")
    assert la.shape == (1, 1, 6, 8) and torch.allclose(la, torch.full_like(la, 200 / 255))
    pal = Image.new("P", (8, 6), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30])
    pal.save(tmp_path / "p.png")
    p = load_image(tmp_path / "p.png")
    assert p.shape == (1, 3, 6, 8)
    assert torch.allclose(p[0, :, 0, 0], torch.tensor([10, 20, 30]) / 255.0)


def test_sixteen_bit_grey_scaled_by_65535(tmp_path):
    arr = np.linspace(0, 65535, 32 * 40).reshape(32, 40).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    Image.fromarray(arr).save(tmp_path / "g16.tif")
    for name in ("g16.png", "g16.tif"):
        img = load_image(tmp_path / name)
        assert img.shape == (1, 1, 32, 40)
        assert torch.allclose(img[0, 0], torch.from_numpy(arr.astype(np.float32) / 65535), atol=1e-6)


def test_jpeg_loads(tmp_path):
    save_image(smooth(3), tmp_path / "a.jpg")
    img = load_image(tmp_path / "a.jpg")
    assert img.shape == (1, 3, 32, 40) and (img - smooth(3)).abs().mean() < 0.03


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DipsearchError, match="not found: .*nope.png"):
        load_image(tmp_path / "nope.png")


def test_directory_is_rejected(tmp_path):
    with pytest.raises(DipsearchError, match="is a directory"):
        load_image(tmp_path)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, not pixels")
    with pytest.raises(DipsearchError, match="notes.png is not an image"):
        load_image(path)


def test_truncated_png_is_a_user_error(tmp_path):
    save_image(smooth(3), tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DipsearchError, match="b.png"):
        load_image(tmp_path / "b.png")


def test_save_into_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(DipsearchError, match="cannot write image"):
        save_image(smooth(3), tmp_path / "no" / "such" / "a.png")


def test_center_crop_and_multiple():
    img = torch.arange(7 * 9, dtype=torch.float32).view(1, 1, 7, 9)
    c = center_crop(img, 3, 5)
    assert c.shape == (1, 1, 3, 5) and c[0, 0, 0, 0] == img[0, 0, 2, 2]
    m = crop_to_multiple(smooth(3, 70, 37), 32)
    assert m.shape == (1, 3, 64, 32)
    assert torch.equal(m, smooth(3, 70, 37)[..., 3:67, 2:34])
    with pytest.raises(DipsearchError, match="smaller than the required multiple 32"):
        crop_to_multiple(img, 32)
    with pytest.raises(DipsearchError, match="cannot crop"):
        center_crop(img, 8, 2)
