"""zoo.evaluation.generative.repair_gain on the corruption suite: the input's PSNR against an
independent numpy computation on the suite's own output, and the minimal set's corruptions
unchanged when suite names are listed beside them."""
from __future__ import annotations

import numpy as np
import torch

from zoo.corruptions import corrupt as suite_corrupt
from zoo.evaluation import generative as G
from zoo.models.fashion import fashion_pixel_cnnf

torch.set_num_threads(1)


def _images(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    x01 = np.zeros((n, 1, 28, 28))
    x01[:, :, 6:22, 8:20] = rng.uniform(0.3, 1.0, (n, 1, 16, 12))   # an object on black
    return torch.from_numpy(x01 * 2 - 1).float(), torch.arange(n) % 10


def test_repair_on_suite_corruptions_measures_psnr_against_the_clean_image():
    x, y = _images()
    net = fashion_pixel_cnnf(seed=1)
    out = G.repair_gain(net, x, y, kinds=("gaussian_noise", "defocus_blur"), cycles=2,
                        severity=3, seed=5)
    x01 = ((x.double().numpy() + 1) / 2)
    for name in ("gaussian_noise", "defocus_blur"):
        xc01 = suite_corrupt(x01, name, 3, seed=5).astype(np.float64)
        mse01 = ((xc01 - x01) ** 2).reshape(len(x01), -1).mean(1)
        assert np.isclose(out[name]["psnr_input_db"], np.mean(10 * np.log10(1 / mse01)),
                          atol=1e-3)
        r = out[name]
        assert len(r["psnr_rendering_db"]) == 2 and len(r["accuracy_per_pass"]) == 3
        assert r["psnr_gain_db"] == max(r["psnr_rendering_db"]) - r["psnr_input_db"]


def test_minimal_corruptions_do_not_depend_on_suite_names_beside_them():
    x, y = _images()
    net = fashion_pixel_cnnf(seed=1)
    alone = G.repair_gain(net, x, y, kinds=("noise", "blur"), cycles=1)
    mixed = G.repair_gain(net, x, y, kinds=("shot_noise", "noise", "zoom_blur", "blur"),
                          cycles=1)
    for kind in ("noise", "blur"):
        assert alone[kind] == mixed[kind]
