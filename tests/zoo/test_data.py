"""Tests for zoo.data: idx/pickle/JPEG loaders, errors, augmentation and batching (tiny files only)."""

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    DataError,
    iterate_batches,
    load_cifar10,
    load_fashion_mnist,
    num_batches,
    random_crop_flip,
    train_val_split,
)
from zoo.data import cifar10, fashion_mnist

REAL_NPZ = cifar10.SHARED_DATA_DIR / cifar10.NPZ_NAME


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Hide the real datasets and cache so tests only see the files they write."""
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    monkeypatch.setenv("DGM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-dir")
    monkeypatch.setattr(cifar10, "SHARED_DATA_DIR", tmp_path / "no-shared-dir")


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    magic = (0x08 << 8) | arr.ndim if magic is None else magic
    return struct.pack(f">I{arr.ndim}I", magic, *arr.shape) + arr.astype(np.uint8).tobytes()


def write_fmnist(d: Path, split="train", n=5, seed=0, gz=True, images=None, labels=None):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    d.mkdir(parents=True, exist_ok=True)
    for stem, data in ((f"{prefix}-images-idx3-ubyte", images or idx_bytes(x)),
                       (f"{prefix}-labels-idx1-ubyte", labels or idx_bytes(y))):
        if gz:
            (d / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (d / stem).write_bytes(data)
    return x, y


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_round_trip_and_scaling(tmp_path, gz):
    x, y = write_fmnist(tmp_path, "test", gz=gz)
    x[0, 0, :2] = (0, 255)
    write_fmnist(tmp_path, "test", gz=gz, images=idx_bytes(x))
    xs, ys = load_fashion_mnist("test", tmp_path)
    assert xs.shape == (5, 1, 28, 28) and xs.dtype == np.float32 and ys.dtype == np.int64
    np.testing.assert_allclose(xs[:, 0], x / 255 * 2 - 1, atol=1e-6)
    assert xs[0, 0, 0, 0] == -1 and xs[0, 0, 0, 1] == 1
    np.testing.assert_array_equal(ys, y)
    assert len(FASHION_MNIST_CLASSES) == 10


def test_fashion_bad_magic(tmp_path):
    write_fmnist(tmp_path, images=idx_bytes(np.zeros((5, 28, 28)), magic=2049))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: bad magic number 2049, expected 2051"):
        load_fashion_mnist("train", tmp_path)


def test_fashion_truncated_gzip(tmp_path):
    write_fmnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: cannot read"):
        load_fashion_mnist("train", tmp_path)


def test_fashion_short_payload(tmp_path):
    write_fmnist(tmp_path, images=idx_bytes(np.zeros((5, 28, 28)))[:-1])
    with pytest.raises(DataError, match=r"need 3920 data bytes, file has 3919"):
        load_fashion_mnist("train", tmp_path)


def test_fashion_count_mismatch(tmp_path):
    write_fmnist(tmp_path, labels=idx_bytes(np.zeros(4)))
    with pytest.raises(DataError, match="has 5 images but .* has 4 labels"):
        load_fashion_mnist("train", tmp_path)


def test_fashion_missing_message(tmp_path):
    with pytest.raises(DataError) as info:
        load_fashion_mnist("test")
    msg = str(info.value)
    for part in ("apt-get update && apt-get install -y dataset-fashion-mnist", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz", "no-system-dir", "DGM_DATA_DIR"):
        assert part in msg
    assert "\n" not in msg


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "broken"])
@pytest.mark.parametrize("via", ["argument", "env"])
def test_named_data_dir_is_never_replaced_by_the_system_one(tmp_path, monkeypatch, kind, via):
    """issue 16 case 2: a wrong --data-dir / $DGM_DATA_DIR is an error naming it (it fell back
    to the system Fashion-MNIST, here a valid copy in SYSTEM_DIR)."""
    write_fmnist(tmp_path / "system", n=3, split="test")
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    named = tmp_path / "named"
    if kind == "file":
        named.write_bytes(b"x")
    elif kind in ("empty", "broken"):
        named.mkdir()
    if kind == "broken":
        (named / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    if via == "env":
        monkeypatch.setenv("DGM_DATA_DIR", str(named))
    with pytest.raises(DataError, match=str(named)) as info:
        load_fashion_mnist("test", named if via == "argument" else None)
    assert "apt-get" not in str(info.value)
    assert len(load_fashion_mnist("test", tmp_path / "system")[1]) == 3


def test_fashion_env_var_and_subdir(tmp_path, monkeypatch):
    _, y = write_fmnist(tmp_path / "fashion-mnist", n=3)
    monkeypatch.setenv("DGM_DATA_DIR", str(tmp_path))
    np.testing.assert_array_equal(load_fashion_mnist()[1], y)


def test_fashion_real_if_installed():
    system_dir = Path("/usr/share/datasets/fashion-mnist")
    if not (system_dir / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed")
    x, y = load_fashion_mnist("test", system_dir)
    assert x.shape == (10000, 1, 28, 28) and np.bincount(y).tolist() == [1000] * 10


def test_train_val_split():
    tr, va = train_val_split(100, 20, seed=3)
    assert len(va) == 20 and len(tr) == 80 and not set(tr) & set(va)
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(100))
    assert all(np.array_equal(a, b) for a, b in zip(train_val_split(100, 20, 3), (tr, va)))
    assert not np.array_equal(train_val_split(100, 20, 4)[1], va)
    with pytest.raises(ValueError):
        train_val_split(10, 11, 0)


def tiny_cifar(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


def test_cifar_pickle_round_trip(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    x, y = tiny_cifar(4)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": x.reshape(4, -1), b"labels": y.tolist(), b"batch_label": b"t"}, f, protocol=2)
    xs, ys = load_cifar10("test", tmp_path)
    assert xs.shape == (4, 3, 32, 32) and xs.dtype == np.float32 and ys.dtype == np.int64
    np.testing.assert_allclose(xs, x / 255 * 2 - 1, atol=1e-6)
    np.testing.assert_array_equal(ys, y)


def test_cifar_pickle_corrupt(tmp_path):
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR python batch"):
        load_cifar10("test", tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"uint8 \(N, 3072\)"):
        load_cifar10("test", tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps(os.system))
    with pytest.raises(DataError, match="not allowed"):
        load_cifar10("test", tmp_path)


def write_npz(path: Path, n=12, quality=95, **override):
    x, y = tiny_cifar(n, seed=1)
    x = np.repeat(np.repeat(x[:, :, ::4, ::4], 4, 2), 4, 3)  # smooth blocks survive JPEG well
    blobs = []
    for img in x:
        buf = io.BytesIO()
        Image.fromarray(img.transpose(1, 2, 0)).save(buf, "JPEG", quality=quality, subsampling=0)
        blobs.append(buf.getvalue())
    arrays = {"test_jpeg": np.frombuffer(b"".join(blobs), np.uint8),
              "test_offsets": np.cumsum([0] + [len(b) for b in blobs]),
              "test_labels": y.astype(np.uint8), "classes": np.array(CIFAR10_CLASSES)}
    np.savez(path, **{**arrays, **override})
    return x, y


def test_cifar_jpeg_round_trip_cache_and_limit(tmp_path):
    x, y = write_npz(tmp_path / "cifar10-jpeg-q75.npz")
    xs, ys = load_cifar10("test", tmp_path, limit=5)
    keep = cifar10.balanced_subset(y, 5)
    np.testing.assert_array_equal(ys, y[keep])
    assert not list((tmp_path / "cache").glob("*.npy"))  # partial decodes are not cached
    xs, ys = load_cifar10("test", tmp_path)
    np.testing.assert_array_equal(ys, y)
    assert np.abs((xs + 1) / 2 * 255 - x).mean() < 3
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    np.testing.assert_array_equal(load_cifar10("test", tmp_path)[0], xs)  # from cache
    np.testing.assert_array_equal(load_cifar10("test", tmp_path, limit=5)[0], xs[keep])


def test_balanced_subset_round_robin():
    labels = np.array([0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(cifar10.balanced_subset(labels, 4), [0, 1, 3, 5])


def test_cifar_pickle_preferred_over_npz(tmp_path):
    write_npz(tmp_path / "cifar10-jpeg-q75.npz")
    x, y = tiny_cifar(2)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": x.reshape(2, -1), b"labels": y.tolist()}))
    assert len(load_cifar10("test", tmp_path)[1]) == 2


@pytest.mark.parametrize("override, match", [
    ({"test_offsets": np.array([0, 5, 3] + [0] * 10)}, "increasing offsets"),
    ({"test_labels": np.zeros(3, np.uint8)}, "increasing offsets"),
    ({"test_jpeg": np.zeros(12 * 100, np.uint8), "test_offsets": np.arange(0, 1201, 100)}, "not a decodable JPEG"),
    ({"classes": np.array(list("abcdefghij"))}, "differ from"),
])
def test_cifar_npz_corrupt(tmp_path, override, match):
    write_npz(tmp_path / "cifar10-jpeg-q75.npz", **override)
    with pytest.raises(DataError, match=match):
        load_cifar10("test", tmp_path)


def test_cifar_npz_not_a_zip(tmp_path):
    (tmp_path / "cifar10-jpeg-q75.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable npz"):
        load_cifar10("test", tmp_path)


def test_cifar_missing_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DGM_DATA_DIR", str(tmp_path / "env"))
    (tmp_path / "arg").mkdir()
    with pytest.raises(DataError) as info:
        load_cifar10("train", tmp_path / "arg")
    msg = str(info.value)
    for part in ("data_batch_5", "cifar10-jpeg-q75.npz", str(tmp_path / "arg" / "cifar-10-batches-py")):
        assert part in msg
    assert str(tmp_path / "env") not in msg and "no-shared-dir" not in msg and "\n" not in msg
    with pytest.raises(DataError, match="DGM_DATA_DIR.*does not exist"):
        load_cifar10("train")
    monkeypatch.delenv("DGM_DATA_DIR")
    with pytest.raises(DataError, match="no-shared-dir"):
        load_cifar10("train")


def test_cifar_named_dir_is_never_replaced_by_the_shared_archive(tmp_path, monkeypatch):
    """issue 16 case 2, CIFAR-10: the shared archive is used only when no directory is named."""
    (tmp_path / "shared").mkdir()
    write_npz(tmp_path / "shared" / "cifar10-jpeg-q75.npz")
    monkeypatch.setattr(cifar10, "SHARED_DATA_DIR", tmp_path / "shared")
    assert len(load_cifar10("test")[1]) > 0
    for named in (tmp_path / "nowhere", tmp_path / "shared" / "cifar10-jpeg-q75.npz"):
        with pytest.raises(DataError, match=str(named)):
            load_cifar10("test", named)


@pytest.mark.skipif(not REAL_NPZ.is_file(), reason="shared CIFAR-10 JPEG archive not present")
def test_cifar_real_archive_decodes(tmp_path):
    x, y = load_cifar10("test", REAL_NPZ.parent, limit=20)
    assert x.shape == (20, 3, 32, 32) and np.bincount(y).tolist() == [2] * 10 and x.std() > 0.2


def test_random_crop_flip_shapes_and_determinism():
    x = torch.randn(16, 3, 8, 8)
    a = random_crop_flip(x, 2, generator=torch.Generator().manual_seed(0))
    b = random_crop_flip(x, 2, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, random_crop_flip(x, 2, generator=torch.Generator().manual_seed(1)))


def test_random_crop_flip_without_padding_is_flip_or_identity():
    x = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4).repeat(50, 1, 1, 1)
    out = random_crop_flip(x, 0, generator=torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert torch.all(same ^ flipped) and 20 < flipped.sum() < 80


def test_random_crop_flip_crop_values():
    x = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5).repeat(200, 1, 1, 1)
    out = random_crop_flip(x, 1, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x[0, 0], (1, 1, 1, 1), value=-1)
    windows = [padded[r:r + 5, c:c + 5] for r in range(3) for c in range(3)]
    candidates = windows + [w.flip(1) for w in windows]
    for img in out[:, 0]:
        assert any(torch.equal(img, w) for w in candidates)
    assert (out == -1).any() and (out[:, 0, 2, 2] != 12).any()


def test_iterate_batches_deterministic_and_resumable():
    x, y = np.arange(10, dtype=np.uint8).reshape(10, 1), np.arange(10)
    batches = list(iterate_batches(x, y, 3, shuffle=True, seed=1, epoch=2))
    assert [len(b[1]) for b in batches] == [3, 3, 3, 1]
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
    again = list(iterate_batches(x, y, 3, shuffle=True, seed=1, epoch=2))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    resumed = list(iterate_batches(x, y, 3, shuffle=True, seed=1, epoch=2, start_batch=2))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches[2:], resumed)) and len(resumed) == 2
    other = torch.cat([b[1] for b in iterate_batches(x, y, 3, shuffle=True, seed=1, epoch=3)])
    assert not torch.equal(other, torch.cat([b[1] for b in batches]))
    plain = list(iterate_batches(x, y, 4, shuffle=False, drop_last=True))
    assert [b[1].tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert num_batches(10, 4, drop_last=True) == 2 and num_batches(10, 4) == 3
    torch.testing.assert_close(plain[0][0], torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
