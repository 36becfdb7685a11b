"""Image loading converts every common mode to RGB; preprocessing follows the model's metadata."""

import numpy as np
import pytest
from PIL import Image

from uninext_deploy.errors import UserError
from uninext_deploy.device.imaging import load_rgb, preprocess
from uninext_deploy.images import SHIPPED_IMAGES, find_images, load_images
from conftest import png_header_only
from uninext_deploy.models import get_spec


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_every_mode_becomes_8bit_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / ("x.png" if mode != "CMYK" else "x.jpg")
    image.save(path)
    rgb = load_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (30, 20)


def test_16bit_range_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(tmp_path / "w.png")
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(tmp_path / "g.png")
    assert np.asarray(load_rgb(tmp_path / "w.png")).min() == 255
    assert 120 < np.asarray(load_rgb(tmp_path / "g.png")).mean() < 135


def test_preprocess_crops_and_normalises():
    pre = get_spec("convmlp_s").preprocessing(224, 224)
    assert pre["resize_short_side"] == 248  # int(224 / crop_pct 0.9), as timm
    white = preprocess(Image.new("RGB", (400, 300), (255, 255, 255)), pre)
    assert white.shape == (3, 224, 224) and white.dtype == np.float32
    np.testing.assert_allclose(white[:, 0, 0], (1 - np.array(pre["mean"])) / np.array(pre["std"]), rtol=1e-6)


def test_preprocess_handles_rectangular_crops_of_small_images():
    pre = get_spec("convmlp_s").preprocessing(96, 160)
    assert preprocess(Image.new("RGB", (50, 40)), pre).shape == (3, 96, 160)


def test_shipped_photos_are_real_and_readable():
    paths = find_images()
    images, used = load_images(paths)
    assert len(used) >= 8 and all(p.parent == SHIPPED_IMAGES for p in used)
    assert all(min(im.size) >= 256 for im in images)
    # real photos, not noise: neighbouring pixels are strongly correlated
    arr = np.asarray(images[0], dtype=np.float64).mean(axis=2)
    assert np.corrcoef(arr[:, :-1].ravel(), arr[:, 1:].ravel())[0, 1] > 0.8


def test_unreadable_files_are_skipped_with_a_warning(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image.*broken.jpg"):
        images, used = load_images(find_images(tmp_path))
    assert [p.name for p in used] == ["ok.png"]


def test_empty_or_missing_folders_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="holds no images"):
        find_images(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        find_images(tmp_path / "nope")


def test_photos_in_every_form_load_upright_as_rgb(photo_zoo):
    folder, photo = photo_zoo
    files = {p.name for p in find_images(folder)}
    assert {"rotated.JPG", "tiny.PNG", "photo.webp"} <= files
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\): bomb.png \(Image size \(108000000 pixels\) "
                                         r"exceeds limit.*decompression bomb\?\)\); broken.jpg \(cannot identify"):
        images, used = load_images(find_images(folder))
    loaded = dict(zip((p.name for p in used), images))
    assert set(loaded) == files - {"bomb.png", "broken.jpg"} and all(im.mode == "RGB" for im in images)
    reference = np.asarray(photo, np.float64)
    for name in ("rotated.JPG", "cmyk.jpg", "photo.webp", "rgba.png"):
        assert loaded[name].size == photo.size, name
        error = np.abs(np.asarray(loaded[name], np.float64) - reference).mean()
        assert error < (45 if name == "rgba.png" else 6), (name, error)  # rgba: alpha 200 over white
    gray = np.asarray(photo.convert("L"), np.float64)
    for name in ("gray.png", "gray16.png"):
        assert np.abs(np.asarray(loaded[name], np.float64)[..., 0] - gray).max() <= 1, name
    with pytest.raises(ValueError, match="decompression bomb"):
        load_rgb(folder / "bomb.png")


def test_a_folder_with_no_usable_image_is_one_error(tmp_path):
    from uninext_deploy.pipeline import images_tensor

    png_header_only(tmp_path / "bomb.png", 20000, 20000)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG nothing")
    with pytest.warns(UserWarning, match="bomb.png"), pytest.raises(UserError, match="no readable images in"):
        images_tensor(get_spec("test_convmlp").preprocessing(32, 32), tmp_path)
