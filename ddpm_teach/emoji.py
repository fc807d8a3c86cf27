"""An offline colour data set for notebook 12: Google's Noto emoji as an image folder.

``python -m ddpm_teach data emoji --out data/emoji --size 32`` writes::

    data/emoji/train/<category>/<short_name>.png      RGB, composited on white, size x size
    data/emoji/test/<category>/<short_name>.png       the held-out emoji (FID, classifier accuracy)
    data/emoji/README.md                               source, licence, attribution, counts
    data/emoji/manifest.json                           every image: file, emoji, category, split

an ordinary image folder with a train/test split (:func:`ddpm_teach.data.load_dataset` reads
``train/`` for training and ``test/`` for evaluation), so ``train --dataset data/emoji`` needs no
special case.

**Source.**  The npm package ``emoji-datasource-google`` (iamcal/emoji-data, MIT) ships every
emoji of Unicode Emoji 16.0 as a 64x64 RGBA PNG from Google's Noto Emoji (images Apache-2.0;
flags public domain) and an ``emoji.json`` that gives each one's category.  :func:`fetch_source`
downloads the package tarball from registry.npmjs.org (checked against npm's SHA-512) and unpacks
only the JSON, the licence, the README and the 64-pixel images; ``scripts/setup.sh`` and the
notebook's Colab cell call it.  Nothing is downloaded while building.

**Choices, made deliberately:**

* the category "Component" (5 hair-style and skin-tone swatches, not emoji) is left out;
* skin tones: ``skin_tones="none"`` (default) keeps only the default yellow of each of the 300-odd
  people emoji that have five skin-tone variants, so "People & Body" is not five copies of itself;
  ``"all"`` adds the variants, and a variant always goes to the same split as its base emoji (no
  recoloured copy of a training image is "held out");
* the split is a hash of each emoji's code point(s), so it is stable across versions and sizes:
  ``test_fraction`` of each category, at least one image per category;
* transparency is composited on white (what an emoji looks like on a page) and the 64-pixel image
  is resized with Lanczos filtering.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path

__all__ = ["PACKAGE", "VERSION", "TARBALL_URL", "SHA512", "CATEGORY_FOLDERS", "SKIN_TONES", "EmojiSourceError",
           "default_source", "find_source", "fetch_source", "read_emoji_list", "split_of", "check_build_options", "check_output_folder",
           "build_emoji_folder"]

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
# npm's dist.integrity of the tarball (`npm view emoji-datasource-google@16.0.0 dist.integrity`)
SHA512 = "ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A=="

# emoji.json's category → the class folder's name (sorted, these are labels 0..8)
CATEGORY_FOLDERS = {
    "Activities": "activities", "Animals & Nature": "animals-nature", "Flags": "flags", "Food & Drink": "food-drink",
    "Objects": "objects", "People & Body": "people-body", "Smileys & Emotion": "smileys-emotion",
    "Symbols": "symbols", "Travel & Places": "travel-places",
}
SKIN_TONES = ("none", "all")
_IMAGES = Path("img", "google", "64")
_KEEP = ("emoji.json", "LICENSE", "README.md", "package.json")


class EmojiSourceError(FileNotFoundError):
    """The emoji source package is missing or incomplete; the message says how to get it."""


def default_source() -> Path:
    """Where :func:`fetch_source` unpacks the package: ``$DDPM_TEACH_DATA`` (or
    ``~/.cache/ddpm_teach/data``) / ``emoji-datasource-google-16.0.0``."""
    from .data import default_root

    return default_root() / f"{PACKAGE}-{VERSION}"


def _how_to_get(where: Path) -> str:
    return (f"Get it with `python -m ddpm_teach data emoji --download` (fetches {PACKAGE} {VERSION}, 74 MB, from "
            f"registry.npmjs.org into {default_source()}; `bash scripts/setup.sh` does this too), or unpack "
            f"`npm pack {PACKAGE}@{VERSION}` yourself and pass its package/ folder as --source "
            f"(looked in {where}).")


def find_source(source: str | os.PathLike | None = None) -> Path:
    """The unpacked package folder (``emoji.json`` and ``img/google/64/``): ``source``, else
    ``$DDPM_TEACH_EMOJI``, else :func:`default_source`.  Raises :class:`EmojiSourceError`
    saying how to get it."""
    where = Path(source or os.environ.get("DDPM_TEACH_EMOJI") or default_source()).expanduser()
    if (where / "package" / "emoji.json").is_file():        # the tarball's own layout
        where = where / "package"
    if not (where / "emoji.json").is_file() or not (where / _IMAGES).is_dir():
        missing = "emoji.json" if not (where / "emoji.json").is_file() else str(_IMAGES) + "/"
        raise EmojiSourceError(f"the emoji source {where} has no {missing}. {_how_to_get(where)}")
    return where


def fetch_source(dest: str | os.PathLike | None = None, url: str = TARBALL_URL, sha512: str | None = SHA512,
                 progress: bool = True) -> Path:
    """Download the npm tarball, check its SHA-512, and unpack what :func:`build_emoji_folder`
    needs into ``dest`` (default :func:`default_source`).  Does nothing if ``dest`` is complete."""
    dest = Path(dest).expanduser() if dest else default_source()
    try:
        return find_source(dest)
    except EmojiSourceError:
        pass
    if progress:
        print(f"downloading {url} ...", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
    except OSError as error:
        raise EmojiSourceError(f"could not download {url} ({error}); on a machine without access to "
                               f"registry.npmjs.org, copy an unpacked `npm pack {PACKAGE}@{VERSION}` here and pass "
                               "--source.") from None
    if sha512 is not None:
        digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if digest != sha512:
            raise EmojiSourceError(f"{url}: the download's SHA-512 is {digest}, not npm's {sha512}; it is corrupt "
                                   "or not the expected version. Try again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".emoji-source.", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            wanted = [m for m in tar.getmembers() if m.isfile() and (
                m.name in {f"package/{name}" for name in _KEEP}
                or (m.name.startswith(f"package/{_IMAGES.as_posix()}/") and m.name.endswith(".png")))]
            tar.extractall(staging, members=wanted, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging / "package", dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if progress:
        print(f"unpacked {len(wanted)} files into {dest}")
    return find_source(dest)


def read_emoji_list(source: Path, skin_tones: str = "none") -> list[dict]:
    """One dict per image to write: ``image`` (file in img/google/64), ``name``, ``short_name``,
    ``unified`` (code points), ``base`` (the base emoji's code points), ``category`` (folder name)."""
    if skin_tones not in SKIN_TONES:
        raise ValueError(f"--skin-tones must be one of {', '.join(SKIN_TONES)}, got {skin_tones!r}.")
    try:
        entries = json.loads((source / "emoji.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EmojiSourceError(f"{source / 'emoji.json'} cannot be read ({error}). {_how_to_get(source)}") from None
    rows = []
    for entry in entries:
        folder = CATEGORY_FOLDERS.get(entry.get("category"))
        if folder is None or not entry.get("has_img_google"):
            continue                                           # "Component", or no Noto image
        base = {"image": entry["image"], "name": entry.get("name") or entry["short_name"],
                "short_name": entry["short_name"], "unified": entry["unified"], "base": entry["unified"],
                "category": folder}
        rows.append(base)
        if skin_tones == "all":
            for tone, variant in sorted((entry.get("skin_variations") or {}).items()):
                if variant.get("has_img_google"):
                    rows.append({**base, "image": variant["image"], "unified": variant["unified"],
                                 "short_name": f"{entry['short_name']}-{tone.lower()}"})
    return rows


def split_of(unified: str, test_fraction: float) -> str:
    """"test" for a stable ``test_fraction`` of emoji, by a hash of the code points, else "train"."""
    h = int.from_bytes(hashlib.sha256(unified.upper().encode()).digest()[:8], "big") / 2 ** 64
    return "test" if h < test_fraction else "train"


def _render(path: Path, size: int):
    """The 64x64 RGBA PNG composited on white and resized to ``size`` (Lanczos): a PIL RGB image."""
    from PIL import Image

    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(canvas, rgba).convert("RGB")
    return rgb if rgb.size == (size, size) else rgb.resize((size, size), Image.LANCZOS)


def check_build_options(size: int, test_fraction: float) -> None:
    """``--size`` in [4, 64] (the source is 64x64) and ``--test-fraction`` in (0, 1)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 64:
        raise ValueError(f"--size must be an integer in [4, 64] (the source images are 64x64), got {size!r}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"--test-fraction must lie in (0, 1), got {test_fraction!r}.")


def check_output_folder(out: str | os.PathLike, overwrite: bool = False) -> Path:
    """``--out`` can take the new folder: not an existing non-empty folder (or file) unless
    ``overwrite``, and its parent writable.  Checked before any download or work."""
    from .files import check_output_dir

    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ValueError(f"--out {out} exists and is not empty; add --overwrite to replace it, or give another --out.")
    check_output_dir(out.parent, "--out")
    return out


def build_emoji_folder(out: str | os.PathLike, size: int = 32, *, source: str | os.PathLike | None = None,
                       skin_tones: str = "none", test_fraction: float = 0.15, overwrite: bool = False,
                       limit_per_class: int | None = None, progress: bool = True) -> dict:
    """Write the image folder (see the module's docstring) and return its summary: counts per
    split and category, size, source and licence.  ``out`` is checked before any work: an existing
    non-empty folder is refused unless ``overwrite`` (then it is replaced only once the new one is
    complete).  ``limit_per_class`` keeps the first k emoji of each category (a quick build)."""
    from tqdm.auto import tqdm

    check_build_options(size, test_fraction)
    out = check_output_folder(out, overwrite)
    source = find_source(source)
    rows = read_emoji_list(source, skin_tones)
    if limit_per_class is not None:                            # the first k base emoji of each category
        counts: Counter = Counter()
        kept = set()
        for row in rows:
            if row["base"] == row["unified"] and counts[row["category"]] < limit_per_class:
                counts[row["category"]] += 1
                kept.add(row["base"])
        rows = [row for row in rows if row["base"] in kept]
    missing = [r["image"] for r in rows if not (source / _IMAGES / r["image"]).is_file()]
    if missing:
        raise EmojiSourceError(f"{source / _IMAGES} lacks {len(missing)} images named in emoji.json (e.g. {missing[0]}); "
                               f"the source is incomplete. {_how_to_get(source)}")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = []
        for row in tqdm(rows, desc=f"emoji → {out} ({size}px)", disable=not progress):
            split = split_of(row["base"], test_fraction)
            relative = Path(split, row["category"], f"{row['short_name']}.png")
            (staging / relative.parent).mkdir(parents=True, exist_ok=True)
            _render(source / _IMAGES / row["image"], size).save(staging / relative, optimize=True)
            manifest.append({"file": relative.as_posix(), "split": split, **row})
        _ensure_each_category_in_both_splits(staging, manifest)
        summary = _summary(manifest, size, skin_tones, test_fraction, source)
        (staging / "manifest.json").write_text(json.dumps({"summary": summary, "images": manifest}, indent=1))
        (staging / "README.md").write_text(_readme(summary))
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _ensure_each_category_in_both_splits(staging: Path, manifest: list[dict]) -> None:
    """A category the hash left without a test image (or a training one) gets its last emoji
    (with its skin tones) moved across: every class must exist in both splits."""
    for category in sorted({row["category"] for row in manifest}):
        rows = [row for row in manifest if row["category"] == category]
        for empty in ("test", "train"):
            if any(row["split"] == empty for row in rows):
                continue
            bases = [row["base"] for row in rows]
            if len(set(bases)) < 2:
                raise ValueError(f"category {category!r} has a single emoji; it cannot be in both splits. "
                                 "Build with more emoji per class.")
            base = bases[-1]
            for row in rows:
                if row["base"] == base:
                    target = Path(empty, row["category"], Path(row["file"]).name)
                    (staging / target.parent).mkdir(parents=True, exist_ok=True)
                    os.replace(staging / row["file"], staging / target)
                    row["file"], row["split"] = target.as_posix(), empty


def _summary(manifest: list[dict], size: int, skin_tones: str, test_fraction: float, source: Path) -> dict:
    counts = {split: dict(sorted(Counter(r["category"] for r in manifest if r["split"] == split).items()))
              for split in ("train", "test")}
    return {"size": size, "channels": 3, "skin_tones": skin_tones, "test_fraction": test_fraction,
            "images": len(manifest), "train": sum(counts["train"].values()), "test": sum(counts["test"].values()),
            "per_category": counts, "source": f"npm {PACKAGE} {VERSION} ({TARBALL_URL})", "source_folder": str(source),
            "licence": "images: Noto Emoji, Apache License 2.0 (flags: public domain); emoji.json: MIT (iamcal/emoji-data)"}


def _readme(summary: dict) -> str:
    rows = "\n".join(f"| {category} | {summary['per_category']['train'].get(category, 0)} | "
                     f"{summary['per_category']['test'].get(category, 0)} |" for category in sorted(CATEGORY_FOLDERS.values())
                     if category in summary["per_category"]["train"] or category in summary["per_category"]["test"])
    return f"""# Emoji, {summary['size']}x{summary['size']} RGB (built by `python -m ddpm_teach data emoji`)

{summary['images']} images: {summary['train']} in `train/`, {summary['test']} in `test/` (held out by a hash of each
emoji's code points: about {summary['test_fraction']:.0%} of each category). Skin tones: {summary['skin_tones']}.

| category | train | test |
|---|---|---|
{rows}

## Source and licence
- Images: [Noto Emoji](https://github.com/googlefonts/noto-emoji) by Google, v2.048, under the
  [Apache License 2.0](https://github.com/googlefonts/noto-emoji/blob/main/LICENSE); the flag images
  come from Noto's third_party/region-flags, which are in the public domain. Modified here: composited
  on white and resized.
- Categories and names: `emoji.json` of [iamcal/emoji-data](https://github.com/iamcal/emoji-data)
  (MIT, Copyright (c) 2013 Cal Henderson), as published on npm: {summary['source']}.
"""
