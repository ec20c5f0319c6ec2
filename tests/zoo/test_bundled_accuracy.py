"""The bundled Fashion-MNIST weights score what their cards say, measured (issue 16, case 10).

The plain pass (pass 0) is recomputed by an independent implementation (``torch.nn.functional``
conv / RMS norm / bias + ReLU / max-pool / dense, written from the architecture in
``zoo.models.fashion``, not through the DGM engine). Default run: on every 20th test image (500)
it must give the recorded hit count (computed with it once; on the full test set it gives the
cards' ``per_pass[0]`` exactly, the first slow test) and the engine's plain pass the same
predictions. Slow: the full test set, and every pass of the full models against the cards.
The pixel-level ``fashion_dgm`` (learned σ²) and the CIFAR-10 WRN-16-2 pair likewise.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from zoo.data import DataError, load_fashion_mnist
from zoo.weights import BUNDLED_DIR

torch.set_num_threads(1)
NAMES = ("fashion_cnn", "fashion_cnnf")
SUBSET_HITS = {"fashion_cnn": 458, "fashion_cnnf": 444}   # plain_pass on x[::20] (500 images)


def _test_set():
    try:
        x, y = load_fashion_mnist("test")
    except DataError as err:
        pytest.skip(f"Fashion-MNIST test set not installed ({err})")
    return torch.from_numpy(x), torch.from_numpy(y)


def _bundled(name: str):
    path = BUNDLED_DIR / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"{name} has no bundled weights")
    from safetensors.torch import load_file
    w = {k.removeprefix("weights.").replace("__", "."): v for k, v in load_file(path).items()}
    return w, json.loads(path.with_suffix(".json").read_text())


def plain_pass(w: dict, x: torch.Tensor) -> torch.Tensor:
    """Pass 0 of the Fashion-MNIST CNN-F with feedback level 2 (the bundled ``ind``):
    4 × [conv 3×3 pad 1 → x / sqrt(mean_HW x² + 1e-8) → ReLU(x + b)] with 2×2 max-pools after
    the 3rd and 4th, then ReLU(W x + b) twice and the head."""
    def block(x, conv, bias):
        x = F.conv2d(x, w[conv], padding=1)
        x = x / torch.sqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + 1e-8)
        return F.relu(x + w[bias][:, None, None])
    x = block(x, "encoder.0.weight", "encoder.2.bias")
    x = block(x, "encoder.3.weight", "encoder.5.bias")
    x = F.max_pool2d(block(x, "layers.0.weight", "layers.2.bias"), 2)
    x = F.max_pool2d(block(x, "layers.4.weight", "layers.6.bias"), 2).flatten(1)
    x = F.relu(x @ w["layers.9.weight"].T + w["layers.10.bias"])
    x = F.relu(x @ w["layers.11.weight"].T + w["layers.12.bias"])
    return x @ w["head.weight"].T + w["head.bias"]


@pytest.mark.parametrize("name", NAMES)
def test_plain_pass_on_a_subset_is_the_recorded_one(name):
    from zoo.models import create_model
    w, card = _bundled(name)
    x, y = _test_set()
    x, y = x[::20], y[::20]
    with torch.no_grad():
        pred = plain_pass(w, x).argmax(1)
        engine = create_model(name, pretrained=True).first_pass(x).argmax(1)
    assert int((pred == y).sum()) == SUBSET_HITS[name]
    assert torch.equal(engine, pred)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_plain_pass_accuracy_is_the_cards(name):
    w, card = _bundled(name)
    assert card["arch"]["ind"] == 2
    x, y = _test_set()
    with torch.no_grad():
        hits = sum(int((plain_pass(w, x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum())
                   for i in range(0, len(y), 1000))
    assert hits / len(y) == card["metrics"]["test"]["per_pass"][0]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_accuracy_is_the_cards(name):
    from zoo.models import create_model
    from zoo.training import evaluate
    _, card = _bundled(name)
    x, y = _test_set()
    result = evaluate(create_model(name, pretrained=True), x, y, batch_size=500)
    assert result["accuracy"] == card["metrics"]["test"]["accuracy"]
    assert result["per_pass"] == card["metrics"]["test"]["per_pass"]


def pixel_plain_pass(w: dict, sigma2: float, x: torch.Tensor) -> torch.Tensor:
    """Pass 0 of the pixel-level ``fashion_dgm`` (dgm-math §1.6: the forward starts from
    x / σ²): 2 × [conv 3×3 pad 1 → ReLU(x + b) → 2×2 max-pool], ReLU(W x + b), the head."""
    x = x / sigma2
    for conv, bias in (("layers.0.weight", "layers.1.bias"), ("layers.3.weight", "layers.4.bias")):
        x = F.max_pool2d(F.relu(F.conv2d(x, w[conv], padding=1) + w[bias][:, None, None]), 2)
    x = F.relu(x.flatten(1) @ w["layers.7.weight"].T + w["layers.8.bias"])
    return x @ w["head.weight"].T + w["head.bias"]


def test_pixel_dgm_plain_pass_on_a_subset_is_the_recorded_one():
    """The bundled fashion_dgm has a learned σ² (0.135): its loader must apply it (without the
    1/σ² the same weights get 277 of these 500 right)."""
    from zoo.models import create_model
    w, card = _bundled("fashion_dgm")
    x, y = _test_set()
    x, y = x[::20], y[::20]
    with torch.no_grad():
        pred = pixel_plain_pass(w, card["arch"]["sigma2"], x).argmax(1)
        engine = create_model("fashion_dgm", pretrained=True).first_pass(x).argmax(1)
    assert int((pred == y).sum()) == 447
    assert torch.equal(engine, pred)


@pytest.mark.slow
def test_pixel_dgm_accuracy_is_the_cards():
    w, card = _bundled("fashion_dgm")
    x, y = _test_set()
    with torch.no_grad():
        hits = sum(int((pixel_plain_pass(w, card["arch"]["sigma2"], x[i:i + 1000]).argmax(1)
                        == y[i:i + 1000]).sum()) for i in range(0, len(y), 1000))
    assert hits / len(y) == card["metrics"]["test"]["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ("cnn_wrn_16_2", "cnnf_wrn_16_2"))
def test_cifar_wrn_accuracy_is_the_cards(name):
    """The bundled CIFAR-10 WRN-16-2 pair on all 10,000 test images (the shared JPEG archive)
    scores every pass as its card records."""
    from zoo.data import load_cifar10
    from zoo.models import create_model
    from zoo.training import evaluate
    card = json.loads((BUNDLED_DIR / f"{name}.json").read_text())
    try:
        x, y = load_cifar10("test")
    except DataError as err:
        pytest.skip(f"CIFAR-10 test set not found ({err})")
    result = evaluate(create_model(name, pretrained=True), torch.from_numpy(x),
                      torch.from_numpy(y), batch_size=500)
    assert result["accuracy"] == card["metrics"]["test"]["accuracy"]
    assert result["per_pass"] == card["metrics"]["test"]["per_pass"]
