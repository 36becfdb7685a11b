"""Calibration data: real images in every common format, seeded, and clear errors for bad folders."""

import numpy as np
import pytest
from PIL import Image

from uninext_deploy.errors import UserError
from uninext_deploy.export.calibration import calibration_set
from uninext_deploy.models import get_spec

PRE = get_spec("convmlp_s").preprocessing(64, 64)


def _photo(seed: int) -> Image.Image:
    # a smooth "photo": a colour gradient with a seeded tint
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:80, 0:100]
    rgb = np.stack([x * 2.5, y * 3.0, (x + y) * 1.4], axis=-1) * rng.uniform(0.5, 1.0, 3)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    _photo(0).save(tmp_path / "a.jpg")
    _photo(1).save(tmp_path / "b.png")
    _photo(2).convert("L").save(tmp_path / "gray.bmp")
    _photo(3).convert("RGBA").save(tmp_path / "alpha.webp")
    _photo(4).convert("P").save(tmp_path / "palette.png")
    Image.fromarray((np.asarray(_photo(5).convert("L"), np.uint16) * 257)).save(tmp_path / "deep16.png")
    return tmp_path


def test_a_folder_of_mixed_formats_calibrates(folder):
    samples = calibration_set(PRE, folder, size=6)
    x = samples.array()
    assert samples.distinct == 6 and x.shape == (6, 3, 64, 64) and x.dtype == np.float32 and np.isfinite(x).all()


def test_sampling_is_seeded(folder):
    np.testing.assert_array_equal(calibration_set(PRE, folder, 3, seed=1).array(),
                                  calibration_set(PRE, folder, 3, seed=1).array())
    assert not np.array_equal(calibration_set(PRE, folder, 3, seed=1).array(),
                              calibration_set(PRE, folder, 3, seed=2).array())


def test_unreadable_files_are_skipped_with_their_names(folder):
    """Read in the seeded order until enough open: the broken files met on the way are named and replaced."""
    for i in range(4):
        (folder / f"truncated{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.warns(UserWarning, match=r"skipped \d unreadable image\(s\): truncated"):
        samples = calibration_set(PRE, folder, size=6)
    assert len(samples) == 6 and not any("truncated" in view.path.name for view in samples.views)
    assert samples.array().shape == (6, 3, 64, 64)


def test_a_large_folder_is_chosen_from_without_decoding_the_rest(folder, monkeypatch):
    """A folder of many photos: only the chosen ones are decoded (a folder of 12-megapixel photos decoded
    at once held 36 MB each), and the samples are made when read, a batch at a time."""
    from uninext_deploy.export import calibration

    decoded = []
    real = calibration.load_rgb
    monkeypatch.setattr(calibration, "load_rgb", lambda path: decoded.append(path.name) or real(path))
    samples = calibration_set(PRE, folder, size=2)
    assert len(decoded) == 2 and sorted(view.path.name for view in samples.views) == sorted(decoded)
    batches = samples.batches(1)
    assert len(decoded) == 2 and len(batches) == 2  # nothing preprocessed yet
    first = [b.copy() for b in batches]
    assert len(decoded) == 4 and [b.shape for b in first] == [(1, 3, 64, 64)] * 2
    np.testing.assert_array_equal(np.concatenate(list(batches)), np.concatenate(first))  # iterable again


def test_the_last_batch_is_padded_with_the_first_samples(folder):
    samples = calibration_set(PRE, folder, size=5)
    x = samples.array()
    padded = np.concatenate(list(samples.batches(4)))
    assert padded.shape[0] == 8
    np.testing.assert_array_equal(padded[:5], x)
    np.testing.assert_array_equal(padded[5:], x[:3])


def test_fewer_images_than_needed_are_augmented_like_the_shipped_photos_with_a_warning(folder):
    """3 photos at the default --calib-size 32: every photo as it is, then augmented views, and said so."""
    with pytest.warns(UserWarning, match="has 6 usable image.*--calib-size 32: calibrating on augmented views"):
        samples = calibration_set(PRE, folder, size=32)
    x = samples.array()
    assert x.shape[0] == 32 and samples.distinct == 6 and len({s.tobytes() for s in x}) == 32
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(x[:6], calibration_set(PRE, folder, size=6 + 1).array()[:6])


def test_too_few_readable_images_are_augmented_and_the_broken_ones_named(folder):
    (folder / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.warns(UserWarning) as caught:
        samples = calibration_set(PRE, folder, size=7)
    said = " ".join(str(w.message) for w in caught)
    assert "truncated.jpg" in said and "has 6 usable image(s) for --calib-size 7" in said
    assert len(samples) == 7 and samples.distinct == 6


def test_a_folder_of_only_unreadable_files_is_one_error(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="broken.jpg"), pytest.raises(UserError, match="has no readable image"):
        calibration_set(PRE, tmp_path, size=4)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(UserError, match="holds no images"):
        calibration_set(PRE, tmp_path, size=4)
    with pytest.raises(UserError, match="does not exist"):
        calibration_set(PRE, tmp_path / "nope", size=4)


def test_default_is_the_shipped_photos_augmented_to_any_count():
    samples = calibration_set(PRE, None, size=25)
    x = samples.array()
    assert len({sample.tobytes() for sample in x}) == 25 and samples.distinct < 25  # every augmented view differs
    np.testing.assert_array_equal(x, calibration_set(PRE, None, size=25).array())
    # photos, not noise: neighbouring pixels correlate strongly in every sample
    corr = [np.corrcoef(s[0, :, :-1].ravel(), s[0, :, 1:].ravel())[0, 1] for s in x]
    assert np.median(corr) > 0.8 and min(corr) > 0.1  # white noise would sit near 0
