"""Your own photos as training data (notebooks 04 and 12): ``folder/<class name>/<image files>``.

:func:`read_image_folder` reads such a folder into uint8 tensors; :func:`ddpm_teach.data.load_image_folder`
wraps them as an :class:`~ddpm_teach.data.ImageData`, with the checks on how many there are.
Each file goes through four steps:

1. **open** it, or skip it and count it: hidden files (``.DS_Store``), files without an image
   extension (``notes.txt``, ``Thumbs.db``), and corrupt or truncated images (a ``.jpg`` that is
   really text) are skipped, with the reason;
2. **turn it upright**: phone cameras store the sensor's pixels and an EXIF orientation tag, which
   ``PIL.ImageOps.exif_transpose`` applies;
3. **bring it to gray ("L") or RGB** (:func:`to_gray_or_rgb`): transparency composited on white,
   16-bit gray scaled to 0..255, palette and CMYK images converted;
4. **make it square** (:func:`make_square`), with ``image_size``: ``crop="center"`` cuts the largest
   centred square, ``crop="resize"`` squashes the whole image; then bicubic to image_size².

Decoding thousands of JPEGs takes minutes, so the result is cached on disk, in
``$DDPM_TEACH_CACHE/folders`` (default ``~/.cache/ddpm_teach/folders``), keyed by every file's
path, size and modification time, ``image_size``, ``crop`` and :data:`LOADER_VERSION`: a changed,
added or removed file is a new key.  A cache that cannot be read or written is skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .files import atomic_write

__all__ = ["Crop", "CROPS", "IMAGE_EXTENSIONS", "LOADER_VERSION", "FolderImages", "read_image_folder",
           "decode_image", "to_gray_or_rgb", "make_square", "describe_skipped", "folder_cache_dir"]

Crop = Literal["center", "resize"]
CROPS: tuple[str, ...] = ("center", "resize")

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# part of the cache key: raise it whenever decoding changes, so that no cache file of the old code is read
LOADER_VERSION = 1

# how Pillow opens 16-bit gray: "I;16" (PNG, TIFF), "I" (32-bit, e.g. older Pillows' 16-bit PNGs)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# what Pillow raises for a file it cannot decode (UnidentifiedImageError is an OSError)
_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError)


@dataclass
class FolderImages:
    """What :func:`read_image_folder` found.

    images:  uint8 [N, C, H, W] (C = 1 if every image is gray, else 3)
    labels:  int64 [N], indices into ``classes``
    classes: the sub-folders holding at least one readable image, sorted
    skipped: ``(path relative to the folder, reason)`` of each file that is not a readable image
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    skipped: list[tuple[str, str]]


def folder_cache_dir() -> Path:
    """``$DDPM_TEACH_CACHE/folders``, else ``$XDG_CACHE_HOME/ddpm_teach/folders`` or ``~/.cache/ddpm_teach/folders``
    (the same root as the evaluator's feature cache)."""
    base = os.environ.get("DDPM_TEACH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ddpm_teach"
    return Path(base).expanduser() / "folders"


# ----------------------------------------------------------------------------------------------
# one image: upright, gray or RGB, square
# ----------------------------------------------------------------------------------------------

def to_gray_or_rgb(image):
    """A PIL image of any mode as "L" (gray) or "RGB", the two the model trains on.

    * Transparency (RGBA, LA, a palette or a gray/RGB image with a transparent colour) is
      composited on white, out = α·c + (1 − α)·255.  A plain ``convert("RGB")`` drops α and shows
      the colour stored under transparent pixels, usually black.
    * 16-bit gray ("I;16", "I") is scaled, out = round(v · 255 / 65535).  A plain ``convert("L")``
      clips every value above 255 to white.
    * Palette images become RGB, or L when every pixel is gray; CMYK and YCbCr become RGB;
      1-bit images become L with 0 and 255.  "L" and "F" (float, taken as 0..255) stay gray.
    """
    from PIL import Image

    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)                    # (H, W), 0..65535
        return Image.fromarray(np.round(values * (255 / 65535)).astype(np.uint8), "L")
    gray = image.mode in ("1", "L", "LA", "La", "F")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")          # α·c + (1 − α)·255
    elif gray:
        return image.convert("L")
    else:
        rgb = image.convert("RGB")
    if gray or (image.mode in ("P", "PA") and _all_gray(rgb)):
        return rgb.convert("L")                       # exact for R = G = B (the luma weights sum to 1)
    return rgb


def _all_gray(rgb) -> bool:
    pixels = np.asarray(rgb)                                                               # (H, W, 3)
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


def make_square(image, image_size: int, crop: Crop = "center"):
    """A PIL image as image_size x image_size, bicubic.  ``crop="center"`` first cuts the largest
    centred square (the edges of the long side are lost, shapes keep their proportions);
    ``crop="resize"`` squashes the whole image (nothing is lost, shapes are stretched)."""
    from PIL import Image

    if crop == "center":
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BICUBIC)
    return image


def decode_image(path: str | Path, image_size: int | None = None, crop: Crop = "center"):
    """Steps 1-4 for one file: the image as a uint8 array, (H, W) gray or (H, W, 3) RGB, or the
    reason it is skipped (a str)."""
    from PIL import Image, ImageOps

    path = Path(path)
    if path.name.startswith("."):
        return "hidden file"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image file"
    try:
        with Image.open(path) as image:
            image.load()                                      # a truncated file fails here
            image = to_gray_or_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError:
        return "too many pixels for Pillow (a decompression bomb?)"
    except _DECODE_ERRORS as error:
        if isinstance(error, Image.UnidentifiedImageError):       # its message repeats the path
            return "not a readable image"
        return str(error) or type(error).__name__                   # e.g. "image file is truncated"
    if image_size is not None:
        image = make_square(image, image_size, crop)
    return np.asarray(image, dtype=np.uint8)


# ----------------------------------------------------------------------------------------------
# the folder
# ----------------------------------------------------------------------------------------------

def _files_by_class(folder: Path) -> dict[str, list[Path]]:
    """Every file in each class sub-folder (and the folders below it), sorted; hidden folders
    (``.ipynb_checkpoints``, ``.git``) are left out, hidden files are not (they are skipped, counted)."""
    layout = (f"Expected an image folder with one sub-folder per class, e.g. {folder}/cats/001.png and "
              f"{folder}/dogs/001.png (extensions: {', '.join(IMAGE_EXTENSIONS)}).")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{folder} has no class sub-folders. {layout}")
    files = {d.name: sorted(p for p in d.rglob("*") if p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(d).parts[:-1]))
             for d in class_dirs}
    if not any(files.values()):
        raise ValueError(f"{folder} contains no images in its sub-folders "
                         f"({', '.join(d.name for d in class_dirs[:5])}{', ...' if len(class_dirs) > 5 else ''}). {layout}")
    return files


def _decode_folder(folder: Path, files: dict[str, list[Path]], image_size: int | None, crop: Crop) -> FolderImages:
    """Decode every file (:func:`decode_image`); a sub-folder without a readable image is not a class."""
    arrays, labels, classes, skipped = [], [], [], []
    first: tuple[str, tuple[int, ...]] | None = None                # (path, shape) of the first image
    for class_name, paths in files.items():
        found = 0
        for path in paths:
            relative = path.relative_to(folder).as_posix()
            array = decode_image(path, image_size, crop)
            if isinstance(array, str):
                skipped.append((relative, array))
                continue
            first = first or (relative, array.shape)
            if image_size is None and array.shape[:2] != first[1][:2]:
                raise ValueError(f"the images in {folder} differ in size: {first[0]} is {_size(first[1])} but "
                                 f"{relative} is {_size(array.shape)}. Pass --image-size N (image_size=N in "
                                 "Python), e.g. 32, to make each one square (--crop center or resize) and N x N.")
            arrays.append(array)
            labels.append(len(classes))
            found += 1
        if found:
            classes.append(class_name)
    if not arrays:
        raise ValueError(f"{folder} contains no readable images: all {len(skipped)} files in its class sub-folders "
                         f"were skipped ({describe_skipped(skipped)}). Put .png or .jpg images in {folder}/<class name>/.")
    if image_size is None and first[1][0] != first[1][1]:
        raise ValueError(f"the images in {folder} are {_size(first[1])}, not square (the UNet wants square images). "
                         "Pass --image-size N (image_size=N in Python), e.g. 32, to make each one square and N x N.")
    if any(array.ndim == 3 for array in arrays):                    # one RGB image makes them all RGB
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    else:
        arrays = [a[..., None] for a in arrays]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()   # (N, H, W, C) -> (N, C, H, W)
    return FolderImages(images, torch.tensor(labels, dtype=torch.long), classes, skipped)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"                                  # width x height, as image viewers say


def describe_skipped(skipped: list[tuple[str, str]], n: int = 3) -> str:
    """The first ``n`` skipped files with their reasons, for a one-line message."""
    named = ", ".join(f"{path}: {reason}" for path, reason in skipped[:n])
    return named + (f", and {len(skipped) - n} more" if len(skipped) > n else "")


def read_image_folder(folder: str | Path, image_size: int | None = None, crop: Crop = "center", *,
                      cache: bool = True) -> FolderImages:
    """Read ``folder/<class name>/<files>`` (steps 1-4 of the module docstring), from the cache
    when the same files were read before with the same ``image_size`` and ``crop``.

    Raises ValueError naming the folder when it has no class sub-folders, no readable image, or
    (without ``image_size``) images of different or non-square sizes."""
    if crop not in CROPS:
        raise ValueError(f"crop (--crop) must be one of {CROPS}, got {crop!r}.")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"image_size (--image-size) must be a positive integer, got {image_size!r}.")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder.")
    files = _files_by_class(folder)
    path = _cache_path(folder, files, image_size, crop) if cache else None
    found = _read_cache(path) if path is not None else None
    if found is None:
        found = _decode_folder(folder, files, image_size, crop)
        if path is not None:
            _write_cache(path, found)
    return found


# ----------------------------------------------------------------------------------------------
# the cache
# ----------------------------------------------------------------------------------------------

def _cache_path(folder: Path, files: dict[str, list[Path]], image_size: int | None, crop: Crop) -> Path:
    """``folder_cache_dir()/<sha256>.pt``, the hash of (every file's relative path, size and
    modification time in ns; image_size; crop; LOADER_VERSION)."""
    listing = []
    for paths in files.values():
        for path in paths:
            stat = path.stat()
            listing.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    key = json.dumps({"files": listing, "image_size": image_size, "crop": crop, "version": LOADER_VERSION})
    return folder_cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()}.pt"


def _read_cache(path: Path) -> FolderImages | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["version"] != LOADER_VERSION or payload["images"].dtype != torch.uint8:
            return None
        return FolderImages(payload["images"], payload["labels"], list(payload["classes"]),
                            [(str(p), str(reason)) for p, reason in payload["skipped"]])
    except Exception:          # truncated, corrupt, another layout: decode again (and write it anew)
        return None


def _write_cache(path: Path, found: FolderImages) -> None:
    payload = {"kind": "image_folder", "version": LOADER_VERSION, "images": found.images, "labels": found.labels,
               "classes": found.classes, "skipped": [list(item) for item in found.skipped]}
    try:
        atomic_write(path, lambda f: torch.save(payload, f))
    except (OSError, RuntimeError):  # a read-only or full cache: the next run decodes again
        pass
