"""Your own photos as training data (ddpm_teach.image_folder, data.load_image_folder): mixed sizes,
transparency, 16-bit gray, palettes, CMYK, EXIF orientation, unreadable files, tiny folders, centre
crop against squash, horizontal flips in training, and the decode-once cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ddpm_teach.data as data_module
import ddpm_teach.image_folder as image_folder
from ddpm_teach.cli import main, parse_args
from ddpm_teach.data import FEW_FOLDER_IMAGES, few_images_warning, load_dataset, load_image_folder
from ddpm_teach.image_folder import decode_image, folder_cache_dir, to_gray_or_rgb
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import TrainConfig, random_hflip

from helpers_training import random_image_data, tiny_model_config, tiny_train_config

EXIF_ORIENTATION = 0x0112


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    """Each test its own folder cache (conftest already keeps every test out of ~/.cache)."""
    monkeypatch.setenv("DDPM_TEACH_CACHE", str(tmp_path / "cache"))


def noise_image(size: tuple[int, int], mode: str = "L", seed: int = 0) -> Image.Image:
    """Random pixels, ``size`` = (width, height)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def write_folder(root, images: dict[str, list[Image.Image]]):
    """``root/<class>/<i>.png`` for each class's images."""
    for class_name, class_images in images.items():
        (root / class_name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(class_images):
            image.save(root / class_name / f"{i}.png")
    return root


def error_line(stderr: str) -> str:
    """No traceback and exactly one line starting with 'error:' (warnings may come before it)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


# -- 1. mixed sizes -------------------------------------------------------------------------------

def test_mixed_sizes_are_refused_without_image_size_and_made_square_with_it(tmp_path, capsys):
    folder = write_folder(tmp_path / "mixed", {"a": [noise_image((40, 30), "RGB")], "b": [noise_image((8, 8), "RGB")]})
    with pytest.raises(ValueError) as info:
        load_image_folder(folder)
    message = str(info.value)
    assert "--image-size N" in message and "image_size=N" in message
    assert "a/0.png is 40x30" in message and "b/0.png is 8x8" in message and str(folder) in message
    squared = load_image_folder(folder, image_size=8)
    assert squared.images.shape == (2, 3, 8, 8)
    # the 8x8 image is already 8x8: it is kept pixel for pixel
    assert np.array_equal(squared.images[1].permute(1, 2, 0).numpy(), np.asarray(Image.open(folder / "b" / "0.png")))

    same_but_wide = write_folder(tmp_path / "wide", {"a": [noise_image((12, 8)), noise_image((12, 8), seed=1)]})
    with pytest.raises(ValueError, match="not square.*--image-size N"):
        load_image_folder(same_but_wide)


def test_the_command_line_says_to_pass_image_size(tmp_path, capsys):
    folder = write_folder(tmp_path / "mixed", {"a": [noise_image((20, 10))], "b": [noise_image((8, 8))]})
    assert main(["train", "--dataset", str(folder), "--device", "cpu", "--out-dir", str(tmp_path / "run")]) == 2
    line = error_line(capsys.readouterr().err)
    assert "--image-size N" in line and str(folder) in line
    assert not (tmp_path / "run").exists()


# -- 2. modes: transparency, 16-bit gray, palettes, CMYK ------------------------------------------

def test_transparent_pixels_are_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)              # fully transparent, stored black
    rgba[0, 1] = (255, 0, 0, 255)          # opaque red
    rgba[1, 0] = (0, 0, 0, 128)            # half-transparent black
    rgba[1, 1] = (0, 0, 255, 255)          # opaque blue
    image = Image.fromarray(rgba, "RGBA")
    assert image.convert("RGB").getpixel((0, 0)) == (0, 0, 0)       # what a plain convert gives: black
    out = np.asarray(to_gray_or_rgb(image))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [255, 0, 0] and out[1, 1].tolist() == [0, 0, 255]
    assert np.abs(out[1, 0].astype(int) - round(255 * 127 / 255)).max() <= 1    # α·0 + (1 − α)·255, α = 128/255

    gray_alpha = Image.fromarray(np.array([[[10, 0], [10, 255]]], dtype=np.uint8), "LA")
    out = to_gray_or_rgb(gray_alpha)
    assert out.mode == "L" and np.asarray(out).tolist() == [[255, 10]]

    folder = write_folder(tmp_path / "icons", {"a": [image, image.copy()]})
    loaded = load_image_folder(folder)
    assert loaded.channels == 3 and loaded.images[0, :, 0, 0].tolist() == [255, 255, 255]


def test_palette_images_with_transparency_become_rgb_or_gray(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)           # index 0 red, 1 green
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png", transparency=0)                  # red is the transparent colour
    with Image.open(tmp_path / "p.png") as image:
        out = to_gray_or_rgb(image)
    assert out.mode == "RGB" and np.asarray(out).tolist() == [[[255, 255, 255], [0, 255, 0]]]

    gray_palette = Image.new("P", (2, 1))
    gray_palette.putpalette([30, 30, 30, 200, 200, 200] + [0] * 762)
    gray_palette.putpixel((1, 0), 1)
    out = to_gray_or_rgb(gray_palette)
    assert out.mode == "L" and np.asarray(out).tolist() == [[30, 200]]
    folder = write_folder(tmp_path / "gifs", {"a": [gray_palette, gray_palette.copy()]})
    assert load_image_folder(folder, image_size=2).channels == 1      # all gray: one channel


@pytest.mark.parametrize("suffix, mode", [(".png", "I;16"), (".tif", "I")])
def test_sixteen_bit_gray_is_scaled_to_0_255(tmp_path, suffix, mode):
    values = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    image = Image.fromarray(values if mode == "I;16" else values.astype(np.int32))
    assert image.mode == mode
    path = tmp_path / f"deep{suffix}"
    image.save(path)
    with Image.open(path) as opened:
        assert opened.convert("L").getpixel((1, 0)) == 255            # what a plain convert gives: clipped
    assert decode_image(path).tolist() == [[0, 128, 255, 4]]          # round(v · 255 / 65535)


def test_cmyk_becomes_rgb(tmp_path):
    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "red.tif")
    Image.new("CMYK", (2, 2), (0, 0, 0, 255)).save(tmp_path / "black.tif")
    assert decode_image(tmp_path / "red.tif")[0, 0].tolist() == [255, 0, 0]
    assert decode_image(tmp_path / "black.tif")[0, 0].tolist() == [0, 0, 0]


# -- 3. EXIF orientation --------------------------------------------------------------------------

def test_exif_rotated_photos_come_out_upright(tmp_path):
    stored = np.zeros((2, 4), dtype=np.uint8)                         # 4 wide, 2 high, as the sensor saw it
    stored[0, 3] = 255                                                # the top-right pixel
    image = Image.fromarray(stored, "L")
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 6                                        # "rotate 90° clockwise to display"
    (tmp_path / "photos" / "a").mkdir(parents=True)
    path = tmp_path / "photos" / "a" / "phone.png"
    image.save(path, exif=exif)

    upright = decode_image(path)
    assert upright.shape == (4, 2)                                    # 2 wide, 4 high
    expected = np.zeros((4, 2), dtype=np.uint8)
    expected[3, 1] = 255                                              # top-right turned clockwise: bottom-right
    assert np.array_equal(upright, expected)

    image.save(tmp_path / "photos" / "a" / "phone2.png", exif=exif)
    loaded = load_image_folder(tmp_path / "photos", image_size=4, crop="resize")
    assert loaded.images.shape == (2, 1, 4, 4)
    assert loaded.images[0, 0, 3, 3] > loaded.images[0, 0, 0, 3]     # bright at the bottom right, not the top


# -- 4. unreadable files --------------------------------------------------------------------------

def junk_files(class_dir) -> None:
    """Four kinds of file that are not images, and a truncated PNG."""
    (class_dir / "notes.txt").write_text("not an image")
    (class_dir / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (class_dir / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (class_dir / "fake.jpg").write_text("a text file with an image's name")
    noise_image((32, 32), seed=9).save(class_dir / "whole.png")
    whole = (class_dir / "whole.png").read_bytes()
    (class_dir / "truncated.png").write_bytes(whole[:len(whole) // 2])
    (class_dir / "whole.png").unlink()


def test_unreadable_files_are_skipped_counted_and_named(tmp_path, capsys):
    folder = write_folder(tmp_path / "pets", {"cats": [noise_image((8, 8), seed=k) for k in range(2)],
                                              "dogs": [noise_image((8, 8), seed=k + 2) for k in range(2)],
                                              "junk": []})
    junk_files(folder / "cats")
    junk_files(folder / "junk")                                      # nothing readable: not a class
    (folder / "cats" / ".ipynb_checkpoints").mkdir()
    (folder / "cats" / ".ipynb_checkpoints" / "x.txt").write_text("hidden folder: not read, not counted")
    pets = load_image_folder(folder)
    assert len(pets) == 4 and pets.classes == ["cats", "dogs"] and pets.labels.tolist() == [0, 0, 1, 1]
    assert np.array_equal(pets.images[0, 0].numpy(), np.asarray(Image.open(folder / "cats" / "0.png")))

    skipped = [line for line in warnings_in(capsys.readouterr().err) if "skipped" in line]
    assert len(skipped) == 1
    line = skipped[0]
    assert f"skipped 10 of 14 files in {folder}" in line
    # the first three in sorted order, with their reasons, then the count of the rest
    assert ("cats/.DS_Store: hidden file, cats/Thumbs.db: not an image file, cats/fake.jpg: not a readable image, "
            "and 7 more") in line

    reasons = dict(image_folder.read_image_folder(folder, cache=False).skipped)
    assert reasons["cats/notes.txt"] == "not an image file"
    assert "truncated" in reasons["cats/truncated.png"]


def test_a_folder_without_readable_images_is_refused(tmp_path, capsys):
    folder = tmp_path / "broken"
    (folder / "a").mkdir(parents=True)
    junk_files(folder / "a")
    with pytest.raises(ValueError, match="no readable images") as info:
        load_image_folder(folder)
    assert str(folder) in str(info.value) and "a/fake.jpg: not a readable image" in str(info.value)

    assert main(["train", "--dataset", str(folder), "--device", "cpu", "--out-dir", str(tmp_path / "run")]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1                                  # one line, and nothing else
    line = error_line(stderr)
    assert str(folder) in line and "no readable images" in line and "all 5 files" in line
    assert not (tmp_path / "run").exists()


# -- 5. tiny folders ------------------------------------------------------------------------------

def test_tiny_folders_are_refused_or_warned_about(tmp_path, capsys):
    one = write_folder(tmp_path / "one", {"a": [noise_image((8, 8))], "empty": []})
    with pytest.raises(ValueError, match=r"only 1 readable image; .* at least 2"):
        load_image_folder(one)

    few = write_folder(tmp_path / "few", {"a": [noise_image((8, 8), seed=k) for k in range(3)]})
    assert len(load_image_folder(few)) == 3
    assert warnings_in(capsys.readouterr().err) == []          # loading is not training: no warning yet
    assert few_images_warning(load_image_folder(few)).startswith("few holds only 3 images")

    enough = write_folder(tmp_path / "enough", {"a": [noise_image((4, 4), seed=k) for k in range(FEW_FOLDER_IMAGES)]})
    assert few_images_warning(load_image_folder(enough)) is None

    # `train` warns once the run is set up; a bad flag is refused first, in one line, without it
    flags = ["train", "--dataset", str(few), "--steps", "1", "--batch-size", "2", "--base-channels", "8",
             "--channel-mults", "1", "--attention-resolutions", "8", "--T", "10", "--checkpoint-every", "0",
             "--device", "cpu", "--mixed-precision", "no"]
    assert main([*flags, "--out-dir", str(tmp_path / "run")]) == 0
    memorise = [line for line in warnings_in(capsys.readouterr().err) if "memorises" in line]
    assert len(memorise) == 1 and "few holds only 3 images" in memorise[0]
    assert main([*flags, "--num-res-blocks", "0", "--out-dir", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- 6. centre crop or squash ---------------------------------------------------------------------

def three_bands(tmp_path):
    """A folder of one 12x4 image, three 4-wide vertical bands: 200 | 100 | 50 (and a copy)."""
    bands = np.repeat(np.array([200, 100, 50], dtype=np.uint8), 4)[None].repeat(4, axis=0)   # (4, 12)
    return write_folder(tmp_path / "bands", {"a": [Image.fromarray(bands, "L")] * 2})


def test_center_crop_drops_the_edges_and_resize_keeps_them(tmp_path):
    folder = three_bands(tmp_path)
    center = load_image_folder(folder, image_size=4, crop="center").images[0, 0]
    assert (center == 100).all()                                     # the middle band only
    squashed = load_dataset(folder, image_size=4, crop="resize").images[0, 0]
    assert (squashed[:, 0] > 170).all() and (squashed[:, -1] < 70).all()   # both edges' bands are in it
    assert load_dataset(folder, image_size=4).images[0, 0].eq(100).all()   # "center" is the default
    with pytest.raises(ValueError, match="crop"):
        load_image_folder(folder, image_size=4, crop="stretch")


def test_crop_is_a_train_flag_and_reaches_the_loader(tmp_path, monkeypatch, capsys):
    assert parse_args(["train", "--crop", "resize"]).crop == "resize"
    assert parse_args(["train"]).crop == "center" == TrainConfig().crop
    with pytest.raises(SystemExit):
        parse_args(["train", "--crop", "stretch"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="crop"):
        TrainConfig(crop="stretch")

    seen = []

    def spy(folder, image_size=None, **options):
        seen.append((image_size, options.get("crop")))
        raise ValueError("stop here")

    monkeypatch.setattr(data_module, "load_image_folder", spy)
    folder = three_bands(tmp_path)
    assert main(["train", "--dataset", str(folder), "--image-size", "4", "--crop", "resize", "--device", "cpu",
                 "--out-dir", str(tmp_path / "run")]) == 2
    assert "stop here" in capsys.readouterr().err
    assert seen == [(4, "resize")]


def test_old_train_configs_get_the_new_fields_defaults():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("crop", "hflip")}
    config = TrainConfig.from_dict({**old, "a_key_from_the_future": 1})
    assert config.crop == "center" and config.hflip is False


# -- 7. horizontal flips --------------------------------------------------------------------------

def test_random_hflip_flips_exactly_the_images_the_generator_chose():
    x0 = torch.randn(64, 2, 3, 5)
    flipped = random_hflip(x0, torch.Generator().manual_seed(3))
    chosen = torch.rand(64, generator=torch.Generator().manual_seed(3)) < 0.5       # the same coins
    assert 16 < int(chosen.sum()) < 48
    assert torch.equal(flipped[chosen], x0[chosen].flip(-1))
    assert torch.equal(flipped[~chosen], x0[~chosen])
    assert torch.equal(random_hflip(x0, torch.Generator().manual_seed(3)), flipped)   # reproducible
    assert not torch.equal(random_hflip(x0, torch.Generator().manual_seed(4)), flipped)


def test_the_trainer_flips_its_batches_only_with_hflip(tmp_path):
    data = random_image_data()
    plain = Trainer(tiny_train_config(tmp_path / "plain", seed=5), tiny_model_config(), data)
    before = plain.generator.get_state()
    (x0, _), = plain.micro_batches()
    assert torch.equal(plain.generator.get_state(), before)          # hflip off draws nothing: old runs unchanged
    assert torch.equal(x0, data.batch(plain.order.indices(0))[0])

    flipping = Trainer(tiny_train_config(tmp_path / "flip", seed=5, hflip=True), tiny_model_config(), data)
    (x0_flipped, _), = flipping.micro_batches()
    chosen = torch.rand(x0.shape[0], generator=torch.Generator().manual_seed(5)) < 0.5   # the run's generator, seeded
    assert 0 < int(chosen.sum()) < x0.shape[0]
    assert torch.equal(x0_flipped[chosen], x0[chosen].flip(-1)) and torch.equal(x0_flipped[~chosen], x0[~chosen])
    again = Trainer(tiny_train_config(tmp_path / "again", seed=5, hflip=True), tiny_model_config(), data)
    assert torch.equal(again.micro_batches()[0][0], x0_flipped)


def test_hflip_is_refused_for_latents_and_fixed_on_resume(tmp_path, capsys):
    with pytest.raises(ValueError, match="hflip.*latents"):
        TrainConfig(hflip=True, autoencoder="ae.pt")
    assert parse_args(["train", "--hflip"]).hflip is True and parse_args(["train"]).hflip is False

    folder = write_folder(tmp_path / "faces", {"a": [noise_image((8, 8), seed=k) for k in range(4)],
                                               "b": [noise_image((8, 8), seed=k + 4) for k in range(4)]})
    run = tmp_path / "run"
    tiny = ["--batch-size", "4", "--base-channels", "8", "--channel-mults", "1", "2", "--num-res-blocks", "1",
            "--attention-resolutions", "4", "--norm-groups", "4", "--T", "20", "--device", "cpu", "--out-dir", str(run)]
    assert main(["train", "--dataset", str(folder), "--steps", "1", "--hflip", "--crop", "resize", *tiny]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--no-hflip", *tiny]) == 2
    line = error_line(capsys.readouterr().err)
    assert "--hflip False (the run has True)" in line
    assert main(["train", "--resume", "--crop", "center", *tiny]) == 2
    assert "--crop 'center' (the run has 'resize')" in error_line(capsys.readouterr().err)
    assert main(["train", "--resume", "--hflip", "--crop", "resize", "--steps", "2", *tiny]) == 0   # the same: fine


# -- 8. the decode-once cache ---------------------------------------------------------------------

def test_a_second_load_reads_the_cache_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch, capsys):
    folder = write_folder(tmp_path / "pets", {"cats": [noise_image((10, 10), seed=k) for k in range(3)],
                                              "dogs": [noise_image((10, 10), seed=k + 3) for k in range(2)]})
    (folder / "dogs" / "notes.txt").write_text("skipped, and still reported on a cache hit")
    first = load_image_folder(folder, image_size=8)
    assert len(list(folder_cache_dir().glob("*.pt"))) == 1
    capsys.readouterr()

    decoded = []
    real_decode = image_folder._decode_folder

    def counting_decode(*args, **kwargs):
        decoded.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(image_folder, "_decode_folder", counting_decode)
    hit = load_image_folder(folder, image_size=8)
    assert decoded == []                                             # a hit decodes nothing
    assert torch.equal(hit.images, first.images) and torch.equal(hit.labels, first.labels)
    assert hit.classes == first.classes and hit.name == "pets"
    assert "dogs/notes.txt: not an image file" in capsys.readouterr().err

    load_image_folder(folder, image_size=6)                          # another size: another entry
    load_image_folder(folder, image_size=8, crop="resize")           # another crop: another entry
    assert len(decoded) == 2

    noise_image((12, 12), seed=99).save(folder / "cats" / "1.png")   # changed
    changed = load_image_folder(folder, image_size=8)
    assert len(decoded) == 3 and not torch.equal(changed.images[1], first.images[1])
    assert torch.equal(changed.images[0], first.images[0])
    noise_image((10, 10), seed=7).save(folder / "dogs" / "2.png")    # added
    assert len(load_image_folder(folder, image_size=8)) == 6 and len(decoded) == 4
    (folder / "cats" / "0.png").unlink()                             # removed
    assert len(load_image_folder(folder, image_size=8)) == 5 and len(decoded) == 5
    load_image_folder(folder, image_size=8, cache=False)
    assert len(decoded) == 6


def test_an_unreadable_or_unwritable_cache_falls_back_to_decoding(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "pets", {"a": [noise_image((8, 8), seed=k) for k in range(2)]})
    reference = load_image_folder(folder, cache=False)
    load_image_folder(folder)
    (cache_file,) = folder_cache_dir().glob("*.pt")
    cache_file.write_bytes(b"not a torch file")                     # corrupt
    assert torch.equal(load_image_folder(folder).images, reference.images)
    assert torch.equal(load_image_folder(folder).images, reference.images)   # ... and written anew
    assert cache_file.read_bytes() != b"not a torch file"

    blocked = tmp_path / "a-file"
    blocked.write_text("a cache folder cannot be made here")
    monkeypatch.setenv("DDPM_TEACH_CACHE", str(blocked))
    assert torch.equal(load_image_folder(folder).images, reference.images)
    assert blocked.is_file()
