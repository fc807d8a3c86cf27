"""Datasets: Fashion-MNIST, MNIST, CIFAR-10 and your own image folders (notebook 04).

Everything ends up as one small in-memory :class:`ImageData`: ``images`` uint8 [N, C, H, W]
in 0..255 and ``labels`` int64 [N].  :meth:`ImageData.batch` hands out the model's view of a
batch: float32 images in [-1, 1] (the range the forward process assumes, DDPM §3.3).

Where the data come from (no silent substitutes; a dataset that cannot be had raises
:class:`DatasetNotFoundError`, which says how to get it):

* **Fashion-MNIST / MNIST** are stored as four IDX files (``train-images-idx3-ubyte.gz`` ...).
  :func:`read_idx` parses them with numpy, so a folder that holds them needs neither a download
  nor torchvision.  Looked for in ``root``, in ``root/FashionMNIST/raw`` (``root/MNIST/raw``),
  where torchvision downloads to, and, for Fashion-MNIST, in Debian's offline package
  (``apt-get install dataset-fashion-mnist`` → ``/usr/share/datasets/fashion-mnist``).
  With ``download=True`` (online) torchvision fetches them into ``root``.
* **CIFAR-10** comes through ``torchvision.datasets.CIFAR10``.
* **Your own images:** a folder with one sub-folder per class (:func:`load_image_folder`; real
  photos are decoded by :mod:`ddpm_teach.image_folder`, once, and cached).

torchvision is imported only inside the download paths (never by ``import ddpm_teach.data``),
and a broken torchvision install is reported with what to do about it.
"""
from __future__ import annotations

import gzip
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .image_folder import CROPS, IMAGE_EXTENSIONS, Crop, describe_skipped, read_image_folder

__all__ = [
    "DATASETS",
    "CLASS_NAMES",
    "DEBIAN_FASHION_MNIST",
    "IMAGE_EXTENSIONS",
    "ImageData",
    "DatasetNotFoundError",
    "to_model_range",
    "from_model_range",
    "default_root",
    "read_idx",
    "candidate_folders",
    "find_idx_files",
    "resize_images",
    "CROPS",
    "MIN_FOLDER_IMAGES",
    "FEW_FOLDER_IMAGES",
    "few_images_warning",
    "load_image_folder",
    "split_folder",
    "dataset_key",
    "load_dataset",
]

DATASETS: tuple[str, ...] = ("fashion_mnist", "mnist", "cifar10")

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(digit) for digit in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}

# where Debian's `dataset-fashion-mnist` package puts the original IDX files
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# the sub-folder of `root` that torchvision.datasets.{FashionMNIST, MNIST} download into
_TORCHVISION_RAW = {"fashion_mnist": Path("FashionMNIST", "raw"), "mnist": Path("MNIST", "raw")}


# ----------------------------------------------------------------------------------------------
# the container and the [-1, 1] convention
# ----------------------------------------------------------------------------------------------

def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 → float32 in [-1, 1]:  x = images / 127.5 − 1.  Any shape."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_model_range expects uint8 images in 0..255, got {images.dtype}.")
    return images.float() / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] → uint8 in 0..255 (rounded; values outside [-1, 1] are clamped).

    The inverse of :func:`to_model_range`, used to write samples as PNG or NPZ.  Any shape."""
    if not x.is_floating_point():
        raise TypeError(f"from_model_range expects float images in [-1, 1], got {x.dtype}.")
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass(repr=False)
class ImageData:
    """A whole dataset in memory.

    images:  uint8 [N, C, H, W], values 0..255 (square: H == W)
    labels:  int64 [N], class indices into ``classes``
    classes: the class names, ``classes[label]``
    name:    where it came from (``"fashion_mnist"``, a folder name, ...)
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                             f"{tuple(self.images.shape)}.")
        self.labels = torch.as_tensor(self.labels).long()
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must have shape [N]=[{self.images.shape[0]}], got {tuple(self.labels.shape)}.")
        self.classes = list(self.classes)
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in [0, {len(self.classes) - 1}] (one per class name), got "
                             f"values in [{int(self.labels.min())}, {int(self.labels.max())}].")

    @property
    def channels(self) -> int:
        """C: 1 for grayscale, 3 for RGB."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """H (= W; the UNet wants square images)."""
        H, W = self.images.shape[-2:]
        if H != W:
            raise ValueError(f"images are {H}x{W}, not square; reload with image_size=... to resize them.")
        return int(H)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, indices, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's view of some examples.

        indices: anything that indexes a tensor (a LongTensor [B], a list, a slice).
        Returns ``x`` float32 [B, C, H, W] in [-1, 1] and ``y`` int64 [B], both on ``device``.
        The uint8 images travel to the device first (4x less to copy), then are converted."""
        if isinstance(indices, torch.Tensor):
            indices = indices.to(self.images.device)
        x = to_model_range(self.images[indices].to(device))   # (B, C, H, W), x = u8/127.5 − 1
        y = self.labels[indices].to(device)                    # (B,)
        return x, y

    def to(self, device: torch.device | str) -> "ImageData":
        """The same data on ``device``: on a GPU, training then never copies a batch from the host
        (Fashion-MNIST's 60,000 images are 47 MB as uint8)."""
        return ImageData(self.images.to(device), self.labels.to(device), self.classes, self.name)

    def subset(self, indices) -> "ImageData":
        """A smaller ImageData with the same classes, e.g. ``data.subset(range(512))`` for a CI run."""
        if isinstance(indices, range):
            indices = slice(indices.start, indices.stop, indices.step)
        return ImageData(self.images[indices], self.labels[indices], self.classes, self.name)

    def __repr__(self) -> str:
        H, W = self.images.shape[-2:]
        return (f"ImageData(name={self.name!r}, N={len(self)}, channels={self.channels}, "
                f"size={H}x{W}, classes={len(self.classes)})")


class DatasetNotFoundError(FileNotFoundError):
    """A named dataset is not on disk and could not be downloaded.  The message says how to get it."""


def _how_to_get(name: str, root: Path) -> str:
    if name == "fashion_mnist":
        return (
            "To get Fashion-MNIST, do one of:\n"
            f"  * offline (Debian/Ubuntu): `apt-get install dataset-fashion-mnist`, which installs the four\n"
            f"    IDX files {DEBIAN_FASHION_MNIST}/*-ubyte.gz, found here without a download;\n"
            "  * online: load_dataset('fashion_mnist', download=True), or `--download` on the command line\n"
            f"    (torchvision downloads into {root / _TORCHVISION_RAW[name]});\n"
            "  * point root (or the DDPM_TEACH_DATA environment variable) at a folder holding\n"
            "    train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and\n"
            "    t10k-labels-idx1-ubyte.gz (plain, un-gzipped files also work)."
        )
    if name == "mnist":
        return (
            "To get MNIST, do one of:\n"
            "  * online: load_dataset('mnist', download=True), or `--download` on the command line\n"
            f"    (torchvision downloads into {root / _TORCHVISION_RAW[name]});\n"
            "  * point root (or DDPM_TEACH_DATA) at a folder holding the four MNIST IDX files\n"
            "    train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz],\n"
            f"    t10k-labels-idx1-ubyte[.gz], or put them in {root / _TORCHVISION_RAW[name]}."
        )
    return (
        "To get CIFAR-10, do one of:\n"
        "  * online: load_dataset('cifar10', download=True), or `--download` on the command line;\n"
        f"  * put torchvision's CIFAR-10 files where it expects them: {root / 'cifar-10-batches-py'}\n"
        "    (the extracted cifar-10-python.tar.gz), with root (or DDPM_TEACH_DATA) pointing at its parent."
    )


def default_root() -> Path:
    """``$DDPM_TEACH_DATA`` if set, else ``~/.cache/ddpm_teach/data``."""
    return Path(os.environ.get("DDPM_TEACH_DATA") or Path.home() / ".cache" / "ddpm_teach" / "data").expanduser()


def _import_torchvision():
    """``import torchvision``, turning *any* failure into an ImportError that says what to do.

    A torchvision built for another torch can fail with an OSError (its ``_C.so`` asks for a
    libtorch it cannot find) or a RuntimeError, not just an ImportError."""
    try:
        import torchvision
        import torchvision.datasets  # noqa: F401  (the part we use)
    except ModuleNotFoundError as error:
        if error.name != "torchvision":
            raise ImportError(_broken_torchvision_message(error)) from error
        raise ImportError(
            "torchvision is not installed, and it is needed to download datasets (and to read CIFAR-10). "
            "Install the torchvision that matches your torch, e.g. `pip install --upgrade torch torchvision` "
            "from the same index. Fashion-MNIST also works offline without torchvision: "
            f"`apt-get install dataset-fashion-mnist` ({DEBIAN_FASHION_MNIST})."
        ) from error
    except Exception as error:  # OSError, RuntimeError, AttributeError, ... from a mismatched build
        raise ImportError(_broken_torchvision_message(error)) from error
    return torchvision


def _broken_torchvision_message(error: BaseException) -> str:
    return (
        f"torchvision is installed but broken: `import torchvision` failed with "
        f"{type(error).__name__}: {error}\n"
        f"This usually means torch ({torch.__version__}) and torchvision come from different builds "
        "(e.g. one for CUDA, one for CPU, or different versions). Install a matched pair, e.g. "
        "`pip install --upgrade torch torchvision` from the same index (with the same --index-url). "
        "Fashion-MNIST also works offline without torchvision: `apt-get install dataset-fashion-mnist`."
    )


# ----------------------------------------------------------------------------------------------
# IDX files (the format of MNIST and Fashion-MNIST)
# ----------------------------------------------------------------------------------------------

# the third byte of the magic number says the element type (big-endian, as all of IDX)
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> torch.Tensor:
    """Parse one IDX file (``.gz`` or plain) into a tensor.

    Layout (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``00 00 <type> <ndim>``,
    then ``ndim`` big-endian uint32 sizes, then the data, big-endian, row-major.
    Images (``*-images-idx3-ubyte``) come back uint8 [N, H, W]; labels (``idx1``) uint8 [N].
    A corrupt or truncated file raises ValueError naming the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError; EOFError = cut-off .gz
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read it as {'gzip' if path.suffix == '.gz' else 'a file'} "
                         f"({type(error).__name__}: {error}); the file is corrupt or truncated, "
                         "delete it and get it again.") from error

    if len(raw) < 4:
        raise ValueError(f"{path}: only {len(raw)} bytes, too short to be an IDX file (corrupt or truncated).")
    zero1, zero2, type_code, ndim = struct.unpack(">BBBB", raw[:4])
    if zero1 != 0 or zero2 != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 00 00 <type> <ndim>, "
                         "e.g. 0x00000803 for images); not an IDX file, or corrupt.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, the header needs {header}).")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: the header promises shape {shape} ({expected} data bytes) but the file "
                         f"holds {len(raw) - header}; it is truncated or corrupt, get it again.")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def candidate_folders(name: str, root: str | Path | None = None) -> list[Path]:
    """The folders searched for the IDX files of ``name`` ("fashion_mnist" or "mnist"), in order:
    ``root``, ``root/FashionMNIST/raw`` (resp. ``root/MNIST/raw``; torchvision's download folder)
    and, for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``."""
    if name not in _TORCHVISION_RAW:
        raise ValueError(f"IDX files exist only for {', '.join(_TORCHVISION_RAW)}, not {name!r}.")
    root = Path(root).expanduser() if root is not None else default_root()
    folders = [root, root / _TORCHVISION_RAW[name]]
    if name == "fashion_mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def find_idx_files(split: Literal["train", "test"], roots: Iterable[str | Path]) -> tuple[Path, Path] | None:
    """The first folder of ``roots`` that holds both IDX files of ``split``.

    Looks for ``{train,t10k}-images-idx3-ubyte`` and ``{train,t10k}-labels-idx1-ubyte``, plain or
    ``.gz`` (plain first: faster to read).  Returns ``(images_path, labels_path)`` or None.
    Each folder is checked as given; see :func:`candidate_folders` for the usual list."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    prefix = "train" if split == "train" else "t10k"

    def first_existing(folder: Path, stem: str) -> Path | None:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        return None

    for folder in map(Path, roots):
        images = first_existing(folder, f"{prefix}-images-idx3-ubyte")
        labels = first_existing(folder, f"{prefix}-labels-idx1-ubyte")
        if images is not None and labels is not None:
            return images, labels
    return None


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 [N, 1, H, W] and labels int64 [N] from an images/labels IDX pair."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != torch.uint8:
        raise ValueError(f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {tuple(images.shape)}.")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path} holds {tuple(labels.shape)} labels for {images.shape[0]} images "
                         f"in {images_path}; the two files do not belong together.")
    return images.unsqueeze(1), labels.long()            # (N, H, W) -> (N, 1, H, W)


# ----------------------------------------------------------------------------------------------
# resizing and image folders
# ----------------------------------------------------------------------------------------------

def resize_images(images: torch.Tensor, image_size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 [N, C, H, W] → uint8 [N, C, image_size, image_size], bilinear with antialiasing.

    E.g. Fashion-MNIST's 28x28 → 32x32 for a UNet that halves the size three times.  Works on
    floats in chunks of ``chunk`` images (so 60000 images need little memory), then rounds back."""
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}.")
    if tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], image_size, image_size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].float()                        # (b, C, H, W) in 0..255
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + chunk] = x.round().clamp(0, 255).to(torch.uint8)
    return out


# a dataset this small is refused: one image is a point, not a distribution to learn
MIN_FOLDER_IMAGES = 2
# below this a warning: the model has capacity to memorise every image, and its samples come out as copies
FEW_FOLDER_IMAGES = 100


def _warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (as the command line prints its ``error: ...`` lines)."""
    print("warning: " + " ".join(message.split()), file=sys.stderr)


def few_images_warning(data: "ImageData") -> str | None:
    """The warning ``train`` prints (once the run is set up, after every check) when a data set has
    fewer than FEW_FOLDER_IMAGES images; None otherwise."""
    if len(data) >= FEW_FOLDER_IMAGES:
        return None
    return (f"{data.name} holds only {len(data)} images: a diffusion model trained on so few memorises them, and its "
            "samples come out as copies of them; hundreds to thousands of images let it learn what they have in common.")


def load_image_folder(folder: str | Path, image_size: int | None = None, *, crop: Crop = "center",
                      cache: bool = True) -> ImageData:
    """Your own images: ``folder/<class name>/<image files>``; labels follow the sorted sub-folder names.

    Real photos are read as :mod:`ddpm_teach.image_folder` describes: upright (EXIF), transparency on
    white, 16-bit gray scaled, gray ("L", C=1) if every image is gray, else RGB (C=3).  With
    ``image_size``, each is made square (``crop="center"``: the centred square; ``"resize"``: the
    whole image, squashed) and resized (bicubic); without it, all must share one square size.

    Files that are not readable images (``notes.txt``, ``.DS_Store``, a corrupt ``.jpg``) are
    skipped, and one warning line counts them and names the first few; a sub-folder without a
    readable image is not a class, and hidden folders (``.ipynb_checkpoints``) are not read.
    Fewer than MIN_FOLDER_IMAGES (2) readable images are refused (one image is not a distribution);
    under FEW_FOLDER_IMAGES (100), ``train`` warns that the model will memorise them
    (:func:`few_images_warning`).

    The decoded tensors are cached on disk (``$DDPM_TEACH_CACHE/folders``), so that the next run
    with the same files, ``image_size`` and ``crop`` skips the decoding; ``cache=False`` neither
    reads nor writes it."""
    folder = Path(folder).expanduser()
    found = read_image_folder(folder, image_size, crop, cache=cache)
    n = len(found.labels)
    if found.skipped:
        _warn(f"skipped {len(found.skipped)} of {n + len(found.skipped)} files in {folder} that are not readable "
              f"images ({describe_skipped(found.skipped)}); remove or fix them to silence this.")
    if n < MIN_FOLDER_IMAGES:
        raise ValueError(f"{folder} holds only {n} readable image{'s' if n != 1 else ''}; a diffusion model learns a "
                         f"distribution from many examples: put at least {MIN_FOLDER_IMAGES} (better hundreds) in "
                         f"{folder}/<class name>/.")
    return ImageData(found.images, found.labels, found.classes, folder.name)


# ----------------------------------------------------------------------------------------------
# the one entry point
# ----------------------------------------------------------------------------------------------

def _load_mnist_format(name: str, root: Path, train: bool, download: bool) -> ImageData:
    split = "train" if train else "test"
    found = find_idx_files(split, candidate_folders(name, root))
    if found is None and download:
        torchvision = _import_torchvision()
        dataset_class = torchvision.datasets.FashionMNIST if name == "fashion_mnist" else torchvision.datasets.MNIST
        try:
            dataset_class(str(root), train=train, download=True)    # writes root/<Class>/raw/*-ubyte
        except Exception as error:                                   # offline: URLError, RuntimeError, ...
            raise DatasetNotFoundError(f"{name} is not on disk and downloading it into {root} failed "
                                       f"({type(error).__name__}: {error}).\n{_how_to_get(name, root)}") from error
        found = find_idx_files(split, candidate_folders(name, root))
    if found is None:
        searched = ", ".join(str(p) for p in candidate_folders(name, root))
        raise DatasetNotFoundError(f"{name} ({split} split) not found; looked for its IDX files in: {searched}.\n"
                                   f"{_how_to_get(name, root)}")
    images, labels = _read_idx_pair(*found)
    if tuple(images.shape[1:]) != (1, 28, 28) or int(labels.max()) > 9:
        raise ValueError(f"the IDX files {found[0]} and {found[1]} hold images {tuple(images.shape)} with labels "
                         f"up to {int(labels.max())}; that is not {name} (28x28, 10 classes).")
    return ImageData(images, labels, list(CLASS_NAMES[name]), name)


def _load_cifar10(root: Path, train: bool, download: bool) -> ImageData:
    torchvision = _import_torchvision()
    try:
        dataset = torchvision.datasets.CIFAR10(str(root), train=train, download=download)
    except Exception as error:  # RuntimeError "Dataset not found or corrupted", or a failed download
        raise DatasetNotFoundError(f"cifar10 could not be loaded from {root}"
                                   f"{' or downloaded' if download else ''} ({type(error).__name__}: {error}).\n"
                                   f"{_how_to_get('cifar10', root)}") from error
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()  # (N,32,32,3)->(N,3,32,32)
    labels = torch.as_tensor(dataset.targets, dtype=torch.long)
    return ImageData(images, labels, list(dataset.classes), "cifar10")


def dataset_key(name_or_path) -> str | None:
    """The name in DATASETS that ``name_or_path`` spells ("Fashion-MNIST" → "fashion_mnist"), or
    None for anything else (a folder)."""
    if not isinstance(name_or_path, str):
        return None
    key = name_or_path.lower().replace("-", "_")
    key = {"fashionmnist": "fashion_mnist", "cifar_10": "cifar10"}.get(key, key)
    return key if key in DATASETS else None


def load_dataset(name_or_path: str | Path, root: str | Path | None = None, *, train: bool = True,
                 download: bool = False, image_size: int | None = None, crop: Crop = "center") -> ImageData:
    """Load a named dataset or an image folder into memory.

    name_or_path: ``"fashion_mnist"``, ``"mnist"``, ``"cifar10"``, or a folder: one sub-folder per
                  class of images (or ``train/`` and ``test/`` of them, see :func:`split_folder`), or
                  a folder holding the four IDX files.
    root:         where named datasets live / are downloaded to; default ``$DDPM_TEACH_DATA``
                  or ``~/.cache/ddpm_teach/data``.
    train:        the training split (60000 / 50000 images) or the test split (10000).
    download:     allow torchvision to download a dataset that is not on disk (needs internet).
    image_size:   resize to image_size x image_size (e.g. 28 → 32 for a UNet that wants 32).
    crop:         how an image folder's images are made square for image_size: ``"center"`` (the
                  centred square) or ``"resize"`` (the whole image, squashed); see
                  :func:`load_image_folder`.  The named datasets are square already.

    Returns an :class:`ImageData` (uint8 [N, C, H, W], int64 labels [N]).  A named dataset that
    cannot be found raises :class:`DatasetNotFoundError` saying how to get it; nothing synthetic
    is ever substituted for it.

    >>> data = load_dataset("fashion_mnist")        # doctest: +SKIP
    >>> x, y = data.batch(torch.arange(16))          # x: [16, 1, 28, 28] in [-1, 1]  # doctest: +SKIP
    """
    root_path = Path(root).expanduser() if root is not None else default_root()
    key = dataset_key(name_or_path)

    if key in DATASETS:
        if key == "cifar10":
            data = _load_cifar10(root_path, train, download)
        else:
            data = _load_mnist_format(key, root_path, train, download)
    else:
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{str(name_or_path)!r} is neither a known dataset nor an existing folder. "
                             f"Choose one of {', '.join(DATASETS)}, or give the path of an image folder "
                             "(one sub-folder per class) or of a folder holding MNIST-format IDX files.")
        data = _load_idx_folder(folder, train)
        if data is None:
            split = split_folder(folder, train)
            data = load_image_folder(split, image_size=image_size, crop=crop)
            if split != folder:
                data.name = folder.name                       # "emoji", not "train"
            return data
    if image_size is not None:
        data.images = resize_images(data.images, image_size)
    return data


SPLITS = {True: "train", False: "test"}


def split_folder(folder: str | Path, train: bool = True) -> Path:
    """The folder to read for a split.  A folder with a ``train/`` sub-folder that holds class
    sub-folders has a split layout (``folder/train/<class>/...`` and ``folder/test/<class>/...``,
    as ``data emoji`` writes): ``train=True`` reads ``train/``, ``train=False`` reads ``test/``.
    Any other folder is one split, the same for both."""
    folder = Path(folder).expanduser()
    train_dir = folder / "train"
    if not (train_dir.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in train_dir.iterdir())):
        return folder
    chosen = folder / SPLITS[bool(train)]
    if not chosen.is_dir():
        raise DatasetNotFoundError(f"{folder} has a train/ folder but no {chosen.name}/ (the held-out split, one "
                                   "sub-folder per class as in train/); add it, or point at train/ itself.")
    return chosen


def _load_idx_folder(folder: Path, train: bool) -> ImageData | None:
    """A folder (or its FashionMNIST/raw, MNIST/raw) holding IDX files, read as MNIST-format data.

    The class names are Fashion-MNIST's if the path says "fashion", else the label values
    as strings ("0", "1", ...).  Returns None if there are no IDX files."""
    split = "train" if train else "test"
    found = find_idx_files(split, [folder, folder / _TORCHVISION_RAW["fashion_mnist"], folder / _TORCHVISION_RAW["mnist"]])
    if found is None:
        other = find_idx_files("test" if train else "train", [folder])
        if other is not None:
            raise DatasetNotFoundError(f"{folder} holds the IDX files of the {'test' if train else 'train'} split "
                                       f"but not of the {split} split (train={train}).")
        return None
    images, labels = _read_idx_pair(*found)
    if "fashion" in str(found[0]).lower() and int(labels.max()) < 10:
        classes = list(CLASS_NAMES["fashion_mnist"])
    else:
        classes = [str(i) for i in range(int(labels.max()) + 1)]
    return ImageData(images, labels, classes, folder.name)
