"""``corrupt``: one corruption at one severity on a batch, seeded per image, with the input
checks done before any work.

Requirements: numpy only (the corruption modules add scipy and Pillow); nothing from the CLI.
"""
from __future__ import annotations

import zlib
from typing import Iterable, Sequence

import numpy as np

from backends import DGMError

from . import _blur, _digital, _noise, _weather
from ._table import CORRUPTIONS, FAMILIES, PARAMS, SEVERITIES

FUNCTIONS = {
    "gaussian_noise": _noise.gaussian_noise, "shot_noise": _noise.shot_noise,
    "impulse_noise": _noise.impulse_noise, "speckle_noise": _noise.speckle_noise,
    "gaussian_blur": _blur.gaussian_blur, "defocus_blur": _blur.defocus_blur,
    "motion_blur": _blur.motion_blur, "zoom_blur": _blur.zoom_blur,
    "contrast": _weather.contrast, "brightness": _weather.brightness, "fog": _weather.fog,
    "pixelate": _digital.pixelate, "jpeg_compression": _digital.jpeg_compression,
    "elastic_transform": _digital.elastic_transform, "occlusion": _digital.occlusion,
}
MIN_SIDE = 16


def to_unit(x_signed) -> np.ndarray:
    """Input units [−1, 1] (``pixel / 255 * 2 − 1``) → the suite's [0, 1], float64."""
    return (np.asarray(x_signed, dtype=np.float64) + 1) / 2


def to_signed(x01) -> np.ndarray:
    """The suite's [0, 1] → input units [−1, 1], float32 (the inverse of :func:`to_unit`)."""
    return np.asarray(x01, dtype=np.float32) * 2 - 1


def family(name: str) -> str:
    """The family ("noise", "blur", "weather", "digital") of corruption ``name``."""
    return next(f for f, names in FAMILIES.items() if name in names)


def parse_corruptions(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"all"``, a family name, or comma-separated names (or an iterable of them) -> names,
    in table order for "all"/families and in the given order otherwise; unknown names raise
    one ``DGMError`` listing them and the known names."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)
             if s.strip()]
    out: list[str] = []
    for item in items:
        out += CORRUPTIONS if item == "all" else FAMILIES.get(item, (item,))
    bad = [n for n in out if n not in FUNCTIONS]
    if bad or not out:
        raise DGMError(f"corruptions: unknown name(s) {', '.join(map(repr, bad)) or '(none)'}; "
                       f"known: all, {', '.join(FAMILIES)}, {', '.join(CORRUPTIONS)}")
    return tuple(dict.fromkeys(out))


def parse_severities(spec: str | Iterable[int]) -> tuple[int, ...]:
    """``"1,3,5"`` (or integers) -> severities, each in 1..5, else one ``DGMError``."""
    try:
        items = [int(s) for s in (spec.split(",") if isinstance(spec, str) else spec)
                 if str(s).strip()]
    except ValueError:
        raise DGMError(f"severities: expected comma-separated integers in 1..5, got {spec!r}") \
            from None
    bad = [s for s in items if s not in SEVERITIES]
    if bad or not items:
        raise DGMError(f"severities must be integers in 1..5, got {spec!r}")
    return tuple(dict.fromkeys(items))


def check_images(x: np.ndarray, name: str = "images") -> None:
    """(N, C, H, W) with C ∈ {1, 3}, H = W ≥ 16, finite values in [0, 1]; else one
    ``DGMError`` naming ``name``."""
    if not isinstance(x, np.ndarray):
        raise DGMError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2] != x.shape[3] \
            or x.shape[2] < MIN_SIDE:
        raise DGMError(f"{name} must have shape (N, C, H, W) with C in (1, 3) and square "
                       f"H = W >= {MIN_SIDE} (e.g. (N, 1, 28, 28), (N, 3, 32, 32)), got "
                       f"{x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DGMError(f"{name} must be floating point in [0, 1], got dtype {x.dtype}")
    if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise DGMError(f"{name} must be finite and in [0, 1], got values in "
                       f"[{np.nanmin(x):g}, {np.nanmax(x):g}]")


def image_rng(seed: int, name: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` for corruption ``name``: the same for every severity
    (paired draws: severities differ only by their parameters) and independent of the batch."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), int(index)])


def corrupt(x: np.ndarray, name: str, severity: int, *, seed: int = 0,
            indices: Sequence[int] | None = None) -> np.ndarray:
    """Corruption ``name`` at ``severity`` (1..5) of every image of ``x``.

    Args:
        x: (N, C, H, W) floats in [0, 1], C ∈ {1, 3} (checked first: one ``DGMError``).
        name: a name of ``CORRUPTIONS``; severity: 1..5 (parameters: ``PARAMS[name]``).
        seed: seeds every image's generator, ``image_rng(seed, name, index)``.
        indices: the images' ids for their generators (default 0..N−1), so that an image gets
            the same corruption in any batch.
    Returns:
        float32 (N, C, H, W) in [0, 1]; the same for the same (seed, name, severity, x).
    Example:
        >>> y = corrupt(x, "defocus_blur", 3, seed=0)
    """
    parse_corruptions([name])
    parse_severities([severity])
    check_images(x)
    ids = range(len(x)) if indices is None else indices
    if len(ids) != len(x):
        raise DGMError(f"indices: need one per image ({len(x)}), got {len(ids)}")
    fn, param = FUNCTIONS[name], PARAMS[name][severity - 1]
    out = np.empty(x.shape, dtype=np.float32)
    for i, (img, idx) in enumerate(zip(x, ids)):
        hwc = np.ascontiguousarray(img.transpose(1, 2, 0), dtype=np.float64)
        out[i] = fn(hwc, param, image_rng(seed, name, idx)).transpose(2, 0, 1)
    return out
