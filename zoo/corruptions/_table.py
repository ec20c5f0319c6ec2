"""The severity table: one row per corruption, five parameters per row, and where each comes from.

Requirements: pure data (imports nothing from the project). ``PARAMS[name][s - 1]`` is the
parameter of severity ``s``; its meaning is in ``MEANING[name]``. The values are those of
CIFAR-10-C (Hendrycks & Dietterich 2019, ``make_cifar_c.py``) wherever that benchmark defines
the corruption, for 32×32 RGB *and* 28×28 grayscale; ``NOTES[name]`` says what differs from
CIFAR-10-C and what MNIST-C (Mu & Gilmer 2019) uses. MNIST-C has no five-level scale: each of its
corruptions is one setting taken from ImageNet-C's (224 px) table, far stronger than CIFAR-10-C's
(a defocus radius of 3–10 px or a motion radius of 10–20 px on a 28 px image), so CIFAR-10-C's
small-image scale is used for both sizes. Parameters that CIFAR-10-C gives in multiples of the
image size (elastic transform) or as fractions (pixelate, occlusion) scale with the image; the
others are in pixels or intensities and are used as they are at 28 px.
"""
from __future__ import annotations

FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur"),
    "weather": ("contrast", "brightness", "fog"),
    "digital": ("pixelate", "jpeg_compression", "elastic_transform", "occlusion"),
}
CORRUPTIONS: tuple[str, ...] = tuple(n for names in FAMILIES.values() for n in names)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
    "motion_blur": ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5)),
    "zoom_blur": ((1.0, 1.06, 0.01), (1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.01),
                  (1.0, 1.26, 0.01)),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "fog": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "elastic_transform": ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                          (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "occlusion": (0.2, 0.3, 0.4, 0.5, 0.6),
}

MEANING: dict[str, str] = {
    "gaussian_noise": "σ of x + N(0, σ²)",
    "shot_noise": "photons c: Poisson(c·x) / c",
    "impulse_noise": "fraction of values set to 0 or 1 (half each)",
    "speckle_noise": "σ of x + x·N(0, σ²)",
    "gaussian_blur": "σ (px) of the Gaussian filter",
    "defocus_blur": "(disk radius px, anti-alias σ px)",
    "motion_blur": "(radius px, σ px); angle ~ U(−45°, 45°)",
    "zoom_blur": "zoom factors arange(start, stop, step), averaged with x",
    "contrast": "c: (x − mean)·c + mean",
    "brightness": "added to V of HSV",
    "fog": "(amount, decay) of a plasma fractal: (x + a·F)·max/(max + a)",
    "pixelate": "box-downsample to c·size, box-upsample back",
    "jpeg_compression": "JPEG quality",
    "elastic_transform": "(α, σ, affine) × image size",
    "occlusion": "square side / image side; mid-gray (0.5), uniform position",
}

NOTES: dict[str, str] = {
    "gaussian_noise": "= CIFAR-10-C. MNIST-C (not in its released 15): σ = 0.38 (ImageNet-C s5)",
    "shot_noise": "= CIFAR-10-C. MNIST-C: c = 3 (ImageNet-C s5)",
    "impulse_noise": "= CIFAR-10-C (scikit-image's s&p drawn with our generator). "
                     "MNIST-C: 0.17 (ImageNet-C s4)",
    "speckle_noise": "= CIFAR-10-C. MNIST-C (not in its released 15): σ = 0.6",
    "gaussian_blur": "= CIFAR-10-C (skimage.filters.gaussian: nearest edges, truncate 4). "
                     "MNIST-C (not in its released 15): σ = 2",
    "defocus_blur": "= CIFAR-10-C (17×17 disk, 3×3 Gaussian anti-alias, reflect-101 edges). "
                    "MNIST-C (not in its released 15): (3, 0.1)",
    "motion_blur": "CIFAR-10-C's radius/σ; kernel = imagecorruptions' numpy line kernel "
                   "(CIFAR-10-C called ImageMagick's MotionBlurImage). MNIST-C: (10, 3) s1",
    "zoom_blur": "= CIFAR-10-C. MNIST-C (not in its released 15): arange(1, 1.31, 0.03)",
    "contrast": "= CIFAR-10-C (mean per channel). MNIST-C (not in its released 15): c = 0.1",
    "brightness": "= CIFAR-10-C; grayscale: V = x, so clip(x + c). MNIST-C: +0.5 (s5)",
    "fog": "= CIFAR-10-C (fractal map of the next power of 2 ≥ size, cropped; 32 for both sizes). "
           "MNIST-C: (3.0, 1.4), a 256 map cropped to 28 (smoother)",
    "pixelate": "= CIFAR-10-C, computed in float (no 8-bit rounding). MNIST-C (not "
                "published): 0.4",
    "jpeg_compression": "= CIFAR-10-C (Pillow, 8-bit); grayscale saved as an 8-bit gray JPEG. "
                        "MNIST-C (not in its released 15): quality 7",
    "elastic_transform": "= CIFAR-10-C (random affine with reflect-101 edges, then a smoothed "
                         "displacement field); the affine is resampled with scipy instead of "
                         "OpenCV (OpenCV rounds coordinates to 1/32 px). MNIST-C (not "
                         "published): other parameters (its s1: α = 2, σ = 0.7, affine 0.1)",
    "occlusion": "not in CIFAR-10-C or MNIST-C: random erasing of one square "
                 "(Zhong et al. 2020 erase with noise; torchvision fills 0)",
}


def table_markdown() -> str:
    """The table as markdown (the README's corruption table)."""
    fmt = lambda p: "(" + ", ".join(f"{v:g}" for v in p) + ")" if isinstance(p, tuple) \
        else f"{p:g}"
    lines = ["| family | corruption | parameter | s1 | s2 | s3 | s4 | s5 | source / deviation |",
             "|---|---|---|---|---|---|---|---|---|"]
    for family, names in FAMILIES.items():
        for n in names:
            lines.append(f"| {family} | `{n}` | {MEANING[n]} | "
                         + " | ".join(fmt(p) for p in PARAMS[n]) + f" | {NOTES[n]} |")
    return "\n".join(lines) + "\n"
