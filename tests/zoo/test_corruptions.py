"""Tests for zoo.corruptions: every corruption against a reference implementation of the same
functional form (``imagecorruptions`` 1.1.2, scikit-image, OpenCV, Pillow's 8-bit path) with
the same parameters and the same random draws, the properties of the suite (deterministic per
seed, batch-independent, valid range, distance to the clean image non-decreasing in severity
over a batch), the input checks and the canonical CIFAR-10-C reader on small files."""
from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest
from PIL import Image

from backends import DGMError
from zoo.corruptions import (CORRUPTIONS, FAMILIES, PARAMS, cifar10c_files, corrupt,
                             load_cifar10c, parse_corruptions, parse_severities, table_markdown)
from zoo.corruptions import _blur, _digital, _noise, _weather
from zoo.data import DataError


def _imagecorruptions():
    """``imagecorruptions.corruptions`` (dev extra), importable without ``pkg_resources``
    (gone from current setuptools; it only locates the frost images, which no test uses)."""
    pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            stub = types.ModuleType("pkg_resources")
            stub.resource_filename = lambda *a: ""
            sys.modules["pkg_resources"] = stub
    return pytest.importorskip("imagecorruptions.corruptions")


def _rgb_u8(seed: int = 0, size: int = 32) -> np.ndarray:
    """A smooth-ish RGB test image (H, W, 3) uint8: a random image, blurred, with full range."""
    from scipy import ndimage
    x = np.random.default_rng(seed).random((size, size, 3))
    x = ndimage.gaussian_filter(x, (1.5, 1.5, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return np.round(x * 255).astype(np.uint8)


IMAGENET = {  # imagecorruptions' (ImageNet-C) parameters, severities 1..5
    "gaussian_noise": [.08, .12, .18, .26, .38],
    "shot_noise": [60, 25, 12, 5, 3],
    "speckle_noise": [.15, .2, .35, .45, .6],
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    "zoom_blur": [(1, 1.11, .01), (1, 1.16, .01), (1, 1.21, .02), (1, 1.26, .02),
                  (1, 1.31, .03)],
    "contrast": [.4, .3, .2, .1, .05],
    "brightness": [.1, .2, .3, .4, .5],
    "fog": [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)],
    "jpeg_compression": [25, 18, 15, 10, 7],
}
SEEDED = {"gaussian_noise", "shot_noise", "speckle_noise", "motion_blur", "fog"}
FN = {"gaussian_noise": _noise.gaussian_noise, "shot_noise": _noise.shot_noise,
      "speckle_noise": _noise.speckle_noise, "defocus_blur": _blur.defocus_blur,
      "motion_blur": _blur.motion_blur, "zoom_blur": _blur.zoom_blur,
      "contrast": _weather.contrast, "brightness": _weather.brightness, "fog": _weather.fog}
TOL = {"defocus_blur": 1e-3, "motion_blur": 1e-3, "zoom_blur": 1e-3}  # float32 references


@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize("name", sorted(FN))
def test_same_as_imagecorruptions(name, severity, monkeypatch):
    """Same parameters and, for the random ones, the same draws (a legacy ``RandomState``
    replays ``np.random.seed``) → the same image as ``imagecorruptions`` on 32×32 RGB."""
    ic = _imagecorruptions()
    monkeypatch.setattr(np, "float_", np.float64, raising=False)  # its fog predates numpy 2
    x = _rgb_u8(severity)
    np.random.seed(7)
    ref = np.asarray(getattr(ic, name)(x, severity=severity), dtype=np.float64)
    ours = FN[name](x / 255.0, IMAGENET[name][severity - 1], np.random.RandomState(7)) * 255
    np.testing.assert_allclose(ours, ref, atol=TOL.get(name, 1e-6), rtol=0)


@pytest.mark.parametrize("quality", [80, 40, 7])
def test_jpeg_same_as_imagecorruptions(quality):
    ic = _imagecorruptions()
    x = _rgb_u8(1)
    severity = IMAGENET["jpeg_compression"].index(7) + 1 if quality == 7 else None
    if severity is None:  # the CIFAR-10-C qualities: Pillow directly, as make_cifar_c does
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, "JPEG", quality=quality)
        ref = np.asarray(Image.open(buf))
    else:
        ref = np.asarray(ic.jpeg_compression(Image.fromarray(x), severity))
    ours = _digital.jpeg_compression(x / 255.0, quality) * 255
    np.testing.assert_array_equal(np.round(ours).astype(np.uint8), ref)


@pytest.mark.parametrize("radius,alias", PARAMS["defocus_blur"] + ((3, 0.1), (10, 0.5)))
def test_disk_kernel_same_as_imagecorruptions(radius, alias):
    ic = _imagecorruptions()
    np.testing.assert_allclose(_blur.disk(radius, alias), ic.disk(radius, alias), atol=1e-7)


@pytest.mark.parametrize("amount", PARAMS["impulse_noise"])
def test_impulse_noise_same_as_scikit_image(amount):
    util = pytest.importorskip("skimage.util")
    x = _rgb_u8(2) / 255.0
    ref = util.random_noise(x, mode="s&p", amount=amount, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(_noise.impulse_noise(x, amount, np.random.default_rng(3)), ref)


@pytest.mark.parametrize("sigma", PARAMS["gaussian_blur"])
def test_gaussian_blur_same_as_scikit_image(sigma):
    filters = pytest.importorskip("skimage.filters")
    x = _rgb_u8(3) / 255.0
    ref = np.clip(filters.gaussian(x, sigma=sigma, channel_axis=-1), 0, 1)
    np.testing.assert_allclose(_blur.gaussian_blur(x, sigma), ref, atol=1e-12)


@pytest.mark.parametrize("c", PARAMS["pixelate"])
def test_pixelate_same_as_pillow_8bit(c):
    """CIFAR-10-C pixelates the 8-bit image (two Pillow BOX resizes, each rounding)."""
    x = _rgb_u8(4)
    small = (int(32 * c), int(32 * c))
    ref = np.asarray(Image.fromarray(x).resize(small, Image.BOX).resize((32, 32), Image.BOX))
    ours = _digital.pixelate(x / 255.0, c) * 255
    assert np.abs(ours - ref).max() <= 1.0 + 1e-4  # two roundings of at most 1/2


def _elastic_reference(image: np.ndarray, param, rs: np.random.RandomState) -> np.ndarray:
    """CIFAR-10-C's elastic transform written with OpenCV and scikit-image (the published
    procedure: OpenCV affine warp with reflect-101 edges, skimage-smoothed displacements)."""
    cv2 = pytest.importorskip("cv2")
    filters = pytest.importorskip("skimage.filters")
    from scipy.ndimage import map_coordinates
    h = image.shape[0]
    alpha, sigma, affine = (v * h for v in param)
    img = image.astype(np.float32)
    c = np.float32((h, h)) // 2
    t = h // 3
    p1 = np.float32([c + t, [c[0] + t, c[1] - t], c - t])
    p2 = p1 + rs.uniform(-affine, affine, size=p1.shape).astype(np.float32)
    img = cv2.warpAffine(img, cv2.getAffineTransform(p1, p2), (h, h),
                         borderMode=cv2.BORDER_REFLECT_101)
    dx = (filters.gaussian(rs.uniform(-1, 1, size=(h, h)), sigma, mode="reflect", truncate=3)
          * alpha).astype(np.float32)
    dy = (filters.gaussian(rs.uniform(-1, 1, size=(h, h)), sigma, mode="reflect", truncate=3)
          * alpha).astype(np.float32)
    yy, xx = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    return np.stack([np.clip(map_coordinates(img[..., k], [yy + dy, xx + dx], order=1,
                                             mode="reflect"), 0, 1) for k in range(3)], -1)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_elastic_same_as_opencv_reference(severity):
    """Same draws; OpenCV rounds warp coordinates to 1/32 px, so agreement is to that
    resolution (mean |Δ| well under one 8-bit level)."""
    x = _rgb_u8(5) / 255.0
    param = PARAMS["elastic_transform"][severity - 1]
    ref = _elastic_reference(x, param, np.random.RandomState(11))
    ours = _digital.elastic_transform(x, param, np.random.RandomState(11))
    assert np.abs(ours - ref).mean() < 1 / 255
    assert np.abs(ours - ref).max() < 0.05


def test_occlusion_is_one_gray_square():
    x = np.random.default_rng(0).random((28, 28, 1)) * 0.4  # never 0.5
    for side in PARAMS["occlusion"]:
        out = _digital.occlusion(x, side, np.random.default_rng(1))
        changed = np.argwhere(out[..., 0] != x[..., 0])
        s = int(round(side * 28))
        assert len(changed) == s * s and np.all(out[out != x] == 0.5)
        assert (changed.max(0) - changed.min(0) + 1).tolist() == [s, s]


def _batch(channels: int, n: int = 24, seed: int = 0) -> np.ndarray:
    """Natural-looking images: smoothed noise with a bright blob, values spanning [0, 1]."""
    from scipy import ndimage
    size = 28 if channels == 1 else 32
    x = np.random.default_rng(seed).random((n, channels, size, size))
    x = ndimage.gaussian_filter(x, (0, 0, 2, 2))
    x = (x - x.min(axis=(1, 2, 3), keepdims=True)) / np.ptp(x, axis=(1, 2, 3), keepdims=True)
    return x


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_in_range_and_batch_independent(name, channels):
    x = _batch(channels, n=6)
    a = corrupt(x, name, 3, seed=5)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, corrupt(x, name, 3, seed=5))
    np.testing.assert_array_equal(a[2:4], corrupt(x[2:4], name, 3, seed=5, indices=[2, 3]))
    extremes = np.stack([np.zeros_like(x[0]), np.ones_like(x[0])])
    e = corrupt(extremes, name, 5, seed=0)
    assert e.min() >= 0 and e.max() <= 1


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise",
                                  "speckle_noise", "motion_blur", "fog", "elastic_transform",
                                  "occlusion"])
def test_random_corruptions_depend_on_the_seed(name):
    x = _batch(1, n=4)
    assert not np.array_equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_distance_to_clean_non_decreasing_in_severity(name, channels):
    """Mean RMS distance to the clean image over a batch, severity 1..5. CIFAR-10-C's elastic
    transform is the one published exception: its severity 1 is a pure random affine map,
    larger in pixels than the later ones (0.08 → 0.03 × size), so its distance *decreases*;
    asserted as such, so that a change of the table shows up here."""
    x = _batch(channels)
    d = np.array([np.sqrt(((corrupt(x, name, s, seed=2) - x) ** 2).mean(axis=(1, 2, 3))).mean()
                  for s in range(1, 6)])
    assert d[0] > 0
    if name == "elastic_transform":
        assert np.all(np.diff(d) < 0), d
    else:
        assert np.all(np.diff(d) >= -1e-6 * d[1:]), d


def test_grayscale_matches_rgb_channel_for_channelwise_corruptions():
    x = _batch(1, n=3)[:, :, :, :]
    rgb = np.repeat(x, 3, axis=1)
    for name in ("gaussian_blur", "defocus_blur", "zoom_blur", "contrast", "pixelate"):
        g = corrupt(x, name, 4)
        c = corrupt(rgb, name, 4)
        np.testing.assert_allclose(g[:, 0], c[:, 1], atol=1e-6, err_msg=name)


def test_brightness_grayscale_is_clip_x_plus_c():
    x = _batch(1, n=3)
    for s, c in enumerate(PARAMS["brightness"], 1):
        np.testing.assert_allclose(corrupt(x, "brightness", s), np.clip(x + c, 0, 1),
                                   atol=1e-6)


def test_bad_input_is_one_clear_error():
    x = _batch(1, n=2)
    with pytest.raises(DGMError, match="unknown name.*'blurr'"):
        corrupt(x, "blurr", 1)
    with pytest.raises(DGMError, match="severities must be integers in 1..5"):
        corrupt(x, "fog", 6)
    with pytest.raises(DGMError, match="shape"):
        corrupt(x[:, 0], "fog", 1)
    with pytest.raises(DGMError, match=r"in \[0, 1\]"):
        corrupt(x * 2 - 1, "fog", 1)
    with pytest.raises(DGMError, match="shape"):
        corrupt(np.zeros((2, 2, 28, 28)), "fog", 1)
    with pytest.raises(DGMError, match="unknown name"):
        parse_corruptions("gaussian_noise,nope")
    with pytest.raises(DGMError, match="1..5"):
        parse_severities("1,x")
    with pytest.raises(DGMError, match="1..5"):
        parse_severities("0,3")


def test_parse_names_and_families():
    assert parse_corruptions("all") == CORRUPTIONS
    assert parse_corruptions("blur,fog") == FAMILIES["blur"] + ("fog",)
    assert parse_severities("1,3,5") == (1, 3, 5)
    assert len(CORRUPTIONS) == 15 and all(len(PARAMS[n]) == 5 for n in CORRUPTIONS)
    table = table_markdown()
    assert all(f"`{n}`" in table for n in CORRUPTIONS)


def _write_cifar10c(tmp_path, n: int = 4, names=("fog", "contrast")):
    """Small canonical-layout files: 5·n images per corruption, pixel value = a code of
    (corruption, severity, index) so every read can be checked."""
    d = tmp_path / "CIFAR-10-C"
    d.mkdir()
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(d / "labels.npy", labels)
    for k, name in enumerate(names):
        imgs = np.zeros((5 * n, 32, 32, 3), dtype=np.uint8)
        for s in range(5):
            for i in range(n):
                imgs[s * n + i] = 10 * k + 5 * i + s
        np.save(d / f"{name}.npy", imgs)
    return d


def test_cifar10c_reader(tmp_path, monkeypatch):
    _write_cifar10c(tmp_path)
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    directory, files = cifar10c_files(tmp_path)
    assert directory == tmp_path / "CIFAR-10-C" and set(files) == {"fog", "contrast"}
    x, y = load_cifar10c("contrast", 3, tmp_path, indices=[1, 3])
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0, 0] * 255, [10 + 5 + 2, 10 + 15 + 2], atol=1e-4)
    assert y.tolist() == [1, 3]
    monkeypatch.setenv("DGM_DATA_DIR", str(tmp_path))  # found through the environment too
    x, _ = load_cifar10c("fog", 5, None)
    np.testing.assert_allclose(x[:, 1, 5, 5] * 255, [4, 9, 14, 19], atol=1e-4)


def test_cifar10c_reader_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="labels.npy and fog.npy not found"):
        load_cifar10c("fog", 1, tmp_path)
    d = _write_cifar10c(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_cifar10c("zoom_blur", 1, tmp_path)
    np.save(d / "fog.npy", np.zeros((20, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match="fog.npy: expected uint8"):
        load_cifar10c("fog", 1, tmp_path)
    np.save(d / "fog.npy", np.zeros((15, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="labels"):
        load_cifar10c("fog", 1, tmp_path)
    with pytest.raises(DataError, match="indices"):
        load_cifar10c("contrast", 1, tmp_path, indices=[4])
    with pytest.raises(DGMError, match="1..5"):
        load_cifar10c("contrast", 7, tmp_path)


def test_readme_shows_the_table():
    """The README's corruption table is the code's table."""
    from pathlib import Path
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert table_markdown() in readme.read_text()


def test_unit_maps_match_the_input_scaling():
    """to_unit / to_signed against the data loaders' pixel / 255 * 2 - 1 on every uint8 value."""
    from zoo.corruptions import to_signed, to_unit
    pixels = np.arange(256, dtype=np.uint8)
    signed = pixels.astype(np.float64) / 255 * 2 - 1
    np.testing.assert_allclose(to_unit(signed), pixels / 255, rtol=0, atol=1e-15)
    np.testing.assert_allclose(to_signed(pixels / 255), signed.astype(np.float32), rtol=0,
                               atol=1e-7)
    assert to_signed(pixels / 255).dtype == np.float32
