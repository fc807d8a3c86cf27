"""The emoji data set (ddpm_teach.emoji, ``python -m ddpm_teach data emoji``) and the evaluation
classifier for image folders (train-classifier --dataset, find_classifier, evaluate's choice).

The source here is a small fake of the npm package, written in tmp_path: an ``emoji.json`` in
emoji-data's format and 64x64 RGBA PNGs, so the builder's choices (categories, skin tones, the
split, white compositing) are checked on known pixels without the 74 MB download."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_teach import emoji
from ddpm_teach.cli import main
from ddpm_teach.data import load_dataset

COLOURS = {"Smileys & Emotion": (255, 200, 0), "Food & Drink": (200, 30, 30), "Flags": (0, 80, 200)}


def _png(path: Path, colour, size: int = 64) -> None:
    """A 64x64 RGBA image: a solid disc of ``colour`` on a fully transparent background."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 < (size * 0.3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[disc] = (*colour, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)


def fake_source(root: Path, per_category: int = 6, tones: bool = True) -> Path:
    """An unpacked fake of emoji-datasource-google: three categories of ``per_category`` emoji, a
    "Component" entry, one entry without a Noto image, and skin-tone variants on the smileys."""
    entries = []
    for c, (category, colour) in enumerate(COLOURS.items()):
        for i in range(per_category):
            code = f"1F{c}{i:02X}"
            entry = {"name": f"{category} {i}", "unified": code, "image": f"{code.lower()}.png",
                     "short_name": f"{category.split()[0].lower()}_{i}", "category": category, "has_img_google": True}
            _png(root / "img/google/64" / entry["image"], colour)
            if tones and category == "Smileys & Emotion":
                entry["skin_variations"] = {}
                for tone in ("1F3FB", "1F3FF"):
                    variant = f"{code}-{tone}"
                    entry["skin_variations"][tone] = {"unified": variant, "image": f"{variant.lower()}.png",
                                                      "has_img_google": True}
                    _png(root / "img/google/64" / f"{variant.lower()}.png", (120, 60, 20))
            entries.append(entry)
    entries.append({"name": "skin tone", "unified": "1F3FB", "image": "1f3fb.png", "short_name": "skin-tone-2",
                    "category": "Component", "has_img_google": True})
    _png(root / "img/google/64/1f3fb.png", (120, 60, 20))
    entries.append({"name": "no image", "unified": "1FAFF", "image": "1faff.png", "short_name": "missing",
                    "category": "Objects", "has_img_google": False})
    (root / "emoji.json").write_text(json.dumps(entries))
    return root


@pytest.fixture
def source(tmp_path):
    return fake_source(tmp_path / "src")


def test_build_writes_a_split_rgb_image_folder_composited_on_white(source, tmp_path):
    summary = emoji.build_emoji_folder(tmp_path / "emoji", size=16, source=source, progress=False)
    out = tmp_path / "emoji"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "manifest.json", "test", "train"]
    folders = {"food-drink", "flags", "smileys-emotion"}                # "Component" and image-less entries left out
    assert {p.name for p in (out / "train").iterdir()} == folders == {p.name for p in (out / "test").iterdir()}
    assert summary["images"] == 18 and summary["train"] + summary["test"] == 18
    with Image.open(next((out / "train" / "flags").iterdir())) as image:
        assert image.mode == "RGB" and image.size == (16, 16)
        pixels = np.asarray(image)
    assert tuple(pixels[0, 0]) == (255, 255, 255)                       # transparent → white, not black
    assert np.abs(pixels[8, 8].astype(int) - (0, 80, 200)).max() <= 2   # the disc keeps its colour
    train, test = load_dataset(out, train=True), load_dataset(out, train=False)
    assert train.name == test.name == "emoji" and train.classes == test.classes == sorted(folders)
    assert train.images.shape[1:] == (3, 16, 16) and len(train) + len(test) == 18
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["images"]) == 18 and all((out / row["file"]).is_file() for row in manifest["images"])
    readme = (out / "README.md").read_text()
    assert "Apache License 2.0" in readme and "MIT" in readme and "public domain" in readme


def test_skin_tones_none_keeps_bases_all_keeps_variants_in_their_base_split(source, tmp_path):
    none = emoji.read_emoji_list(source, "none")
    every = emoji.read_emoji_list(source, "all")
    assert len(every) == len(none) + 2 * 6                              # 6 smileys × 2 tones
    assert {row["unified"] for row in none} == {row["base"] for row in every}
    emoji.build_emoji_folder(tmp_path / "all", size=8, source=source, skin_tones="all", progress=False)
    rows = json.loads((tmp_path / "all" / "manifest.json").read_text())["images"]
    split_of_base = {row["base"]: row["split"] for row in rows if row["base"] == row["unified"]}
    assert all(row["split"] == split_of_base[row["base"]] for row in rows)   # no recoloured copy held out
    with pytest.raises(ValueError, match="--skin-tones"):
        emoji.read_emoji_list(source, "some")


def test_split_is_a_stable_hash_of_the_code_points_near_the_asked_fraction():
    codes = [f"1F{i:04X}" for i in range(4000)]
    share = np.mean([emoji.split_of(code, 0.15) == "test" for code in codes])
    assert abs(share - 0.15) < 0.02
    assert [emoji.split_of(c, 0.15) for c in codes[:50]] == [emoji.split_of(c.lower(), 0.15) for c in codes[:50]]
    expected = int.from_bytes(hashlib.sha256(b"1F600").digest()[:8], "big") / 2 ** 64 < 0.15
    assert (emoji.split_of("1F600", 0.15) == "test") == expected


def test_every_category_gets_both_splits_even_when_the_hash_gives_none(tmp_path):
    src = fake_source(tmp_path / "src", per_category=2, tones=False)
    summary = emoji.build_emoji_folder(tmp_path / "e", size=8, source=src, test_fraction=0.01, progress=False)
    assert all(summary["per_category"]["test"][c] >= 1 and summary["per_category"]["train"][c] >= 1
               for c in ("flags", "food-drink", "smileys-emotion"))


def test_limit_per_class_keeps_the_first_k_emoji_of_each_category(source, tmp_path):
    summary = emoji.build_emoji_folder(tmp_path / "e", size=8, source=source, limit_per_class=3, progress=False)
    assert summary["images"] == 9


def test_existing_output_is_refused_and_replaced_only_when_complete(source, tmp_path, capsys):
    out = tmp_path / "emoji"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["data", "emoji", "--out", str(out), "--size", "8", "--source", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and (out / "keep.txt").read_text() == "mine"
    (source / "img/google/64/1f000.png").unlink()                       # an incomplete source: nothing replaced
    assert main(["data", "emoji", "--out", str(out), "--size", "8", "--source", str(source), "--overwrite"]) == 2
    assert "incomplete" in capsys.readouterr().err and (out / "keep.txt").is_file()
    _png(source / "img/google/64/1f000.png", (255, 200, 0))
    assert main(["data", "emoji", "--out", str(out), "--size", "8", "--source", str(source), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "train").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no staging folder left behind


@pytest.mark.parametrize("argv, words", [
    (["--size", "65"], "--size"), (["--size", "3"], "--size"), (["--test-fraction", "1.5"], "--test-fraction"),
])
def test_bad_flags_are_one_line_errors(source, tmp_path, capsys, argv, words):
    assert main(["data", "emoji", "--out", str(tmp_path / "e"), "--source", str(source), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and not (tmp_path / "e").exists()


def test_a_missing_source_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DDPM_TEACH_DATA", str(tmp_path / "nothing"))
    monkeypatch.delenv("DDPM_TEACH_EMOJI", raising=False)
    assert main(["data", "emoji", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--download" in err and "setup.sh" in err and "npm pack" in err
    assert main(["data", "emoji"]) == 2 and "--out" in capsys.readouterr().err


def _tarball(source: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"package/{path.relative_to(source).as_posix()}")
        extra = tarfile.TarInfo("package/img/google/sheets/big.png")      # not unpacked: not needed
        extra.size = 3
        tar.addfile(extra, io.BytesIO(b"abc"))
    return buffer.getvalue()


def test_fetch_source_checks_the_sha512_and_unpacks_only_what_the_build_needs(source, tmp_path):
    data = _tarball(source)
    (tmp_path / "pkg.tgz").write_bytes(data)
    url = (tmp_path / "pkg.tgz").as_uri()
    with pytest.raises(emoji.EmojiSourceError, match="SHA-512"):
        emoji.fetch_source(tmp_path / "dest", url=url, sha512="AAAA", progress=False)
    assert not (tmp_path / "dest").exists()
    good = base64.b64encode(hashlib.sha512(data).digest()).decode()
    dest = emoji.fetch_source(tmp_path / "dest", url=url, sha512=good, progress=False)
    assert (dest / "emoji.json").is_file() and not (dest / "img/google/sheets").exists()
    assert len(list((dest / "img/google/64").iterdir())) == len(list((source / "img/google/64").iterdir()))
    assert emoji.fetch_source(dest, url="file:///nonexistent", progress=False) == dest   # complete: no download
    with pytest.raises(emoji.EmojiSourceError, match="could not download"):
        emoji.fetch_source(tmp_path / "other", url=(tmp_path / "absent.tgz").as_uri(), progress=False)


# ------------------------------------------------------------------ the classifier for an image folder

def test_train_classifier_on_a_folder_and_evaluate_against_its_test_split(source, tmp_path, capsys):
    from ddpm_teach.evaluation import Evaluator, find_classifier

    folder = tmp_path / "emoji"
    emoji.build_emoji_folder(folder, size=8, source=source, progress=False)
    out = tmp_path / "clf.pt"
    assert main(["train-classifier", "--dataset", str(folder), "--epochs", "3", "--batch-size", "4",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["dataset"] == str(folder) and ckpt["classes"] == ["flags", "food-drink", "smileys-emotion"]
    evaluator = Evaluator.load(out)                                     # finds the folder from the checkpoint
    test = load_dataset(folder, train=False)
    from ddpm_teach.data import to_model_range
    scores = evaluator.score(to_model_range(test.images), test.labels)
    assert scores["n"] == len(test) and scores["fid_floor_n"] == len(test)
    assert scores["fid"] == pytest.approx(0.0, abs=1e-6)               # the test set against itself
    per_class, counts = scores["accuracy_per_class"], torch.bincount(test.labels, minlength=3)
    assert list(per_class) == ckpt["classes"]                          # one pass gives the whole and each class
    assert sum(per_class[c] * int(n) for c, n in zip(ckpt["classes"], counts)) / len(test) == pytest.approx(scores["accuracy"])
    for k, name in enumerate(ckpt["classes"]):
        assert per_class[name] == pytest.approx(evaluator.accuracy(to_model_range(test.images[test.labels == k]),
                                                                   test.labels[test.labels == k]))
    train = load_dataset(folder, train=True)
    many = to_model_range(train.images.repeat(3, 1, 1, 1))
    assert evaluator.score(many)["fid_floor_n"] == len(train)           # the floor cannot use more than all of train
    assert find_classifier(3, 8, ckpt["classes"], candidates=(tmp_path / "absent.pt", out)) == out
    with pytest.raises(ValueError, match="train-classifier --dataset"):
        find_classifier(3, 8, ["other", "classes"], candidates=(out,))
    with pytest.raises(ValueError, match="different classes|knows the classes"):
        other = tmp_path / "other"
        emoji.build_emoji_folder(other, size=8, source=fake_source(tmp_path / "src2", tones=False), progress=False)
        for d in (other / "train" / "flags", other / "test" / "flags"):
            d.rename(d.parent / "banners")
        Evaluator.load(out, dataset=str(other))


def test_a_folder_without_a_test_split_cannot_train_a_classifier(tmp_path, capsys):
    for k in range(2):
        for i in range(3):
            _png(tmp_path / "flat" / f"class{k}" / f"{i}.png", (k * 200, 0, 0), size=8)
    assert main(["train-classifier", "--dataset", str(tmp_path / "flat"), "--out", str(tmp_path / "c.pt")]) == 2
    assert "test/" in capsys.readouterr().err and not (tmp_path / "c.pt").exists()


def test_shipped_fashion_classifier_is_found_by_shape_and_classes():
    from ddpm_teach.data import CLASS_NAMES
    from ddpm_teach.evaluation import DEFAULT_CLASSIFIER, find_classifier

    assert find_classifier(1, 28) == DEFAULT_CLASSIFIER
    assert find_classifier(1, 28, list(CLASS_NAMES["fashion_mnist"])) == DEFAULT_CLASSIFIER
    with pytest.raises(ValueError, match="no shipped classifier scores 3x48x48"):
        find_classifier(3, 48)


def test_evaluate_without_a_matching_classifier_fails_before_sampling(tmp_path, capsys, monkeypatch):
    import ddpm_teach.commands as commands
    from ddpm_teach.checkpoint import save_checkpoint
    from ddpm_teach.schedules import NoiseSchedule, make_betas
    from ddpm_teach.unet import UNet, UNetConfig

    config = UNetConfig(image_size=16, in_channels=3, base_channels=8, channel_mults=(1,), num_res_blocks=1,
                        attention_resolutions=(), num_classes=None)
    path = save_checkpoint({"kind": "diffusion", "model_config": config.to_dict(), "model": UNet(config).state_dict(),
                            "schedule": NoiseSchedule(make_betas("linear", 10)).to_config()}, tmp_path / "m.pt")
    monkeypatch.setattr(commands, "generate", lambda args: pytest.fail("sampled before finding a classifier"))
    assert main(["evaluate", "--checkpoint", str(path), "--n", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no shipped classifier scores 3x16x16" in err and "--classifier" in err


def test_colour_folder_trains_samples_rgb_and_evaluates_with_its_own_classifier(source, tmp_path, capsys):
    """The whole path of notebook 12 at toy size, through the command line: an emoji folder, a
    conditional RGB model, an RGB PNG grid, an NPZ of uint8 [N, 3, H, W], and `evaluate` with the
    folder's classifier (passed, since no shipped one knows these toy classes)."""
    folder = tmp_path / "emoji"
    emoji.build_emoji_folder(folder, size=8, source=source, progress=False)
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(folder), "--conditional", "--steps", "2", "--batch-size", "4",
                 "--base-channels", "8", "--channel-mults", "1", "2", "--attention-resolutions", "4",
                 "--T", "10", "--checkpoint-every", "0", "--device", "cpu", "--mixed-precision", "no",
                 "--out-dir", str(run)]) == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["model_config"]["in_channels"] == 3 and ckpt["model_config"]["num_classes"] == 3
    assert ckpt["dataset"] == {"name": "emoji", "classes": ["flags", "food-drink", "smileys-emotion"]}
    grid, npz = tmp_path / "grid.png", tmp_path / "s.npz"
    common = ["--checkpoint", str(run / "checkpoint.pt"), "--labels", "all", "--guidance-scale", "3", "--steps", "2",
              "--device", "cpu"]
    assert main(["sample", *common, "--n", "6", "--out", str(grid)]) == 0
    with Image.open(grid) as image:
        assert image.mode == "RGB"
    assert main(["sample", *common, "--n", "6", "--out", str(npz)]) == 0
    with np.load(npz) as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (6, 3, 8, 8)
        assert f["labels"].tolist() == [0, 1, 2, 0, 1, 2]
    classifier = tmp_path / "clf.pt"
    assert main(["train-classifier", "--dataset", str(folder), "--epochs", "1", "--batch-size", "4",
                 "--device", "cpu", "--out", str(classifier)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--samples", str(npz)]) == 2                      # no shipped classifier for 3x8x8
    assert "--classifier" in capsys.readouterr().err
    assert main(["evaluate", "--samples", str(npz), "--classifier", str(classifier)]) == 0
    out = capsys.readouterr().out
    assert "N=6" in out and "floor at N=6" in out and "conditional accuracy" in out


def _real_source_or_skip() -> Path:
    try:
        return emoji.find_source()
    except emoji.EmojiSourceError as error:
        pytest.skip(f"the emoji source is not installed ({error}); scripts/setup.sh fetches it")


def test_the_real_source_builds_the_documented_data_set(tmp_path):
    """The npm package that setup.sh fetches: nine categories, no skin-tone copies, every category in both splits."""
    summary = emoji.build_emoji_folder(tmp_path / "emoji", size=32, source=_real_source_or_skip(), progress=False)
    assert sorted(summary["per_category"]["train"]) == sorted(emoji.CATEGORY_FOLDERS.values())
    assert all(summary["per_category"]["test"][c] > 0 for c in emoji.CATEGORY_FOLDERS.values())
    assert 1800 < summary["images"] < 2100 and 0.12 < summary["test"] / summary["images"] < 0.18
    rows = json.loads((tmp_path / "emoji" / "manifest.json").read_text())["images"]
    assert all(row["base"] == row["unified"] for row in rows)           # skin_tones="none"


def test_emoji_guidance_benchmark_runs_and_prints_its_table(tmp_path, capsys):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import emoji_guidance
    from ddpm_teach.evaluation import SHIPPED_CLASSIFIERS

    emoji.build_emoji_folder(tmp_path / "emoji", size=32, source=_real_source_or_skip(), progress=False)
    out = tmp_path / "g.json"
    assert emoji_guidance.main(["--quick", "--n", "18", "--steps", "2", "--seeds", "0", "1", "--device", "cpu",
                                "--precision", "fp32", "--dataset", str(tmp_path / "emoji"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [r["scale"] for r in result["summary"]] == [1.0, 3.0] and len(result["rows"]) == 4
    assert result["floor"]["n"] == 18 and "best conditional accuracy at s=" in printed
    assert out.with_suffix(".md").is_file() and (tmp_path / "g_grid.png").is_file()
    assert SHIPPED_CLASSIFIERS[1].name == "emoji_classifier.pt"
