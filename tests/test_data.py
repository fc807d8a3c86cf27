"""ddpm_teach.data: IDX parsing, dataset discovery, image folders, clear errors (notebook 04)."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_teach import data
from ddpm_teach.data import (CLASS_NAMES, DEBIAN_FASHION_MNIST, DatasetNotFoundError, ImageData, find_idx_files,
                             from_model_range, load_dataset, read_idx, to_model_range)

needs_debian_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An independent IDX writer: magic 00 00 08 <ndim>, big-endian uint32 dims, then the bytes."""
    assert array.dtype == np.uint8
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def write_fake_mnist(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0):
    """Four small IDX files in MNIST format; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        arrays[prefix] = (images, labels)
    return arrays


# ---------------------------------------------------------------- the real Fashion-MNIST files

@needs_debian_fashion
def test_debian_fashion_mnist_train_and_test_splits():
    train = load_dataset("fashion_mnist", root=Path("/nonexistent-ddpm-teach-root"))  # found via Debian's folder
    assert len(train) == 60000 and train.images.shape == (60000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.channels == 1 and train.image_size == 28
    assert train.classes == list(CLASS_NAMES["fashion_mnist"]) and train.classes[9] == "Ankle boot"
    counts = torch.bincount(train.labels, minlength=10)
    assert counts.numel() == 10 and int(counts.min()) > 5500 and int(counts.max()) < 6500   # ~6000 per class
    # real pictures, not constants: they use most of the 0..255 range, and the classes differ on average
    assert int(train.images.min()) == 0 and int(train.images.max()) == 255
    mean_trouser = train.images[train.labels == 1].float().mean()
    mean_bag = train.images[train.labels == 8].float().mean()
    assert abs(float(mean_trouser - mean_bag)) > 5

    test = load_dataset("fashion_mnist", root=Path("/nonexistent-ddpm-teach-root"), train=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert set(torch.unique(test.labels).tolist()) == set(range(10))
    assert not torch.equal(test.images[:100], train.images[:100])


@needs_debian_fashion
def test_image_size_resizes_named_dataset_and_batch_is_in_model_range():
    test = load_dataset("fashion_mnist", train=False, image_size=32)
    assert test.images.shape == (10000, 1, 32, 32) and test.images.dtype == torch.uint8
    assert test.image_size == 32
    x, y = test.batch(torch.arange(64))
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32 and y.shape == (64,)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert float(x.min()) < -0.99 and float(x.max()) > 0.9            # the range is used, not squeezed
    # resizing keeps the picture: the mean brightness barely moves
    original = load_dataset("fashion_mnist", train=False)
    assert abs(float(original.images[:500].float().mean() - test.images[:500].float().mean())) < 2.0


@needs_debian_fashion
def test_debian_folder_given_as_a_path_is_read_as_idx():
    test = load_dataset(DEBIAN_FASHION_MNIST, train=False)
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.classes == list(CLASS_NAMES["fashion_mnist"])


# ---------------------------------------------------------------- IDX format

@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(7,), dtype=np.uint8)
    got_images = read_idx(write_idx(tmp_path / f"images{suffix}", images))
    got_labels = read_idx(write_idx(tmp_path / f"labels{suffix}", labels))
    assert got_images.dtype == torch.uint8 and got_images.shape == (7, 5, 3)
    assert np.array_equal(got_images.numpy(), images)
    assert np.array_equal(got_labels.numpy(), labels)


def test_read_idx_big_endian_wider_types(tmp_path):
    values = np.array([[1, -2, 300], [70000, -70000, 5]], dtype=">i4")
    path = tmp_path / "ints-idx2"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x0C, 2) + struct.pack(">2I", 2, 3) + values.tobytes())
    assert read_idx(path).tolist() == values.tolist()


def test_read_idx_truncated_and_corrupt_files_raise_clear_errors(tmp_path):
    images = np.arange(4 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(4, 28, 28)
    good = write_idx(tmp_path / "good-idx3-ubyte", images).read_bytes()

    truncated = tmp_path / "truncated-idx3-ubyte"
    truncated.write_bytes(good[:-100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(truncated)

    bad_magic = tmp_path / "bad-magic-idx3-ubyte"
    bad_magic.write_bytes(b"\x1f\x8b\x08\x03" + good[4:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad_magic)

    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        read_idx(tiny)

    gz_cut = tmp_path / "cut-idx3-ubyte.gz"
    gz_cut.write_bytes(gzip.compress(good)[:200])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_idx(gz_cut)

    not_gz = tmp_path / "plain-but-named.gz"
    not_gz.write_bytes(good)
    with pytest.raises(ValueError, match=str(not_gz.name)):
        read_idx(not_gz)


# ---------------------------------------------------------------- finding files, named datasets

def test_fake_root_in_torchvision_layout_is_found(tmp_path):
    arrays = write_fake_mnist(tmp_path / "FashionMNIST" / "raw", gz=False)
    found = find_idx_files("train", data.candidate_folders("fashion_mnist", tmp_path))
    assert found is not None and found[0].parent == tmp_path / "FashionMNIST" / "raw"
    assert find_idx_files("train", [tmp_path]) is None                  # only looks where it is told

    train = load_dataset("fashion_mnist", root=tmp_path)                 # preferred over Debian's copy
    assert len(train) == 12 and train.images.shape == (12, 1, 28, 28)
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train"][0])
    assert train.labels.tolist() == arrays["train"][1].tolist()
    test = load_dataset("fashion_mnist", root=tmp_path, train=False)
    assert len(test) == 5


def test_mnist_files_directly_in_root_are_found(tmp_path):
    write_fake_mnist(tmp_path, gz=True)
    mnist = load_dataset("mnist", root=tmp_path, train=False)
    assert len(mnist) == 5 and mnist.classes == [str(d) for d in range(10)] and mnist.name == "mnist"


def test_missing_mnist_raises_with_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv("DDPM_TEACH_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", root=tmp_path)
    message = str(info.value)
    assert "download=True" in message and "--download" in message and str(tmp_path) in message
    assert isinstance(info.value, FileNotFoundError)


def test_fashion_mnist_message_mentions_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-here")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion_mnist", root=tmp_path / "empty")
    assert "download=True" in str(info.value) and "t10k-images-idx3-ubyte" in str(info.value)


def test_default_root_reads_environment(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "MNIST" / "raw", n_train=3)
    monkeypatch.setenv("DDPM_TEACH_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    assert len(load_dataset("mnist")) == 3


def test_unknown_name_lists_the_options():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet-but-not-really")
    assert all(name in str(info.value) for name in ("fashion_mnist", "mnist", "cifar10", "folder"))


# ---------------------------------------------------------------- image folders

def write_png_folder(root: Path, sizes: dict[str, list[tuple[int, int]]], mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(2)
    for class_name, class_sizes in sizes.items():
        (root / class_name).mkdir(parents=True)
        for i, (w, h) in enumerate(class_sizes):
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(root / class_name / f"{i}.png")
    return root


def test_image_folder_labels_follow_sorted_subfolders(tmp_path):
    folder = write_png_folder(tmp_path / "pets", {"dogs": [(16, 16)] * 3, "cats": [(16, 16)] * 2})
    (folder / "notes.txt").write_text("not an image")
    pets = load_dataset(folder)
    assert pets.classes == ["cats", "dogs"] and pets.name == "pets"
    assert pets.labels.tolist() == [0, 0, 1, 1, 1]
    assert pets.images.shape == (5, 1, 16, 16) and pets.channels == 1
    from PIL import Image
    first_cat = np.asarray(Image.open(folder / "cats" / "0.png"))
    assert np.array_equal(pets.images[0, 0].numpy(), first_cat)
    resized = load_dataset(str(folder), image_size=8)                    # a str path works too
    assert resized.images.shape == (5, 1, 8, 8) and resized.image_size == 8


def test_image_folder_rgb_and_mixed_sizes(tmp_path):
    folder = write_png_folder(tmp_path / "mixed", {"a": [(20, 12)], "b": [(10, 10)]}, mode="RGB")
    with pytest.raises(ValueError, match="image_size"):
        load_dataset(folder)
    mixed = load_dataset(folder, image_size=12)                          # centre-crop, then resize
    assert mixed.images.shape == (2, 3, 12, 12) and mixed.channels == 3


def test_empty_or_flat_folders_error_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "no_images" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        load_dataset(tmp_path / "no_images")
    from PIL import Image
    (tmp_path / "flat").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(ValueError, match="sub-folder"):
        load_dataset(tmp_path / "flat")


def test_folder_of_idx_files_is_mnist_format(tmp_path):
    arrays = write_fake_mnist(tmp_path / "my_idx", n_train=9, gz=False)
    loaded = load_dataset(tmp_path / "my_idx")
    assert loaded.images.shape == (9, 1, 28, 28)
    assert loaded.labels.tolist() == arrays["train"][1].tolist()


# ---------------------------------------------------------------- the [-1, 1] convention, ImageData

def test_model_range_round_trip_and_batch():
    u8 = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = to_model_range(u8)
    assert x.dtype == torch.float32 and float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert torch.equal(from_model_range(x), u8)
    assert torch.equal(from_model_range(torch.tensor([-3.0, 3.0, 0.0])), torch.tensor([0, 255, 128], dtype=torch.uint8))

    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    d = ImageData(images, torch.arange(10) % 2, ["even", "odd"], "toy")
    xb, yb = d.batch(torch.tensor([3, 4]), device="cpu")
    assert xb.shape == (2, 3, 4, 4) and yb.tolist() == [1, 0]
    assert torch.allclose(xb, images[3:5].float() / 127.5 - 1)
    assert float(xb.min()) >= -1 and float(xb.max()) <= 1
    assert len(d.subset(range(4))) == 4 and "N=10" in repr(d)
    with pytest.raises(ValueError, match="labels"):
        ImageData(images, torch.arange(10), ["a", "b"], "bad")           # label 9 has no class name
    with pytest.raises(ValueError, match="square"):
        _ = ImageData(torch.zeros(1, 1, 4, 6, dtype=torch.uint8), torch.zeros(1), ["a"], "wide").image_size


# ---------------------------------------------------------------- torchvision stays optional

def test_importing_data_does_not_import_torchvision():
    code = "import sys, ddpm_teach.data; print('torchvision' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_broken_torchvision_gives_clear_import_error(tmp_path):
    fake = tmp_path / "fake_site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        'raise OSError("libtorch_cuda.so: cannot open shared object file: No such file or directory")\n')
    write_fake_mnist(tmp_path / "have_mnist" / "MNIST" / "raw", n_train=4)
    code = textwrap.dedent(f"""
        import ddpm_teach, ddpm_teach.data, ddpm_teach.samplers
        from ddpm_teach.data import load_dataset
        # data already on disk needs no torchvision at all
        assert len(load_dataset("mnist", root={str(tmp_path / "have_mnist")!r})) == 4
        for name, download in (("cifar10", False), ("mnist", True)):
            try:
                load_dataset(name, root={str(tmp_path / "empty")!r}, download=download)
            except ImportError as error:
                print("IMPORTERROR:", repr(str(error)))
            else:
                raise SystemExit(name + ": no error")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    messages = [line for line in result.stdout.splitlines() if line.startswith("IMPORTERROR:")]
    assert len(messages) == 2
    for message in messages:
        assert "torchvision is installed but broken" in message
        assert "libtorch_cuda.so" in message                               # the original error is quoted
        assert "pip install --upgrade torch torchvision" in message


def test_image_data_to_device_keeps_the_examples():
    import torch
    from ddpm_teach.data import ImageData

    data = ImageData(torch.arange(2 * 16, dtype=torch.uint8).reshape(2, 1, 4, 4), torch.tensor([1, 0]), ["a", "b"], "t")
    moved = data.to("cpu")
    x, y = moved.batch(torch.tensor([1, 0]))
    x0, y0 = data.batch(torch.tensor([1, 0]))
    assert torch.equal(x, x0) and torch.equal(y, y0) and moved.classes == data.classes
