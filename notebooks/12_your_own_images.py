# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,colab,-widgets
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · Your own images, in colour
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/12_your_own_images.ipynb)
#
# ← [11 · Flow matching](11_flow_matching.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md)
#
# Every notebook so far used 28×28 grey Fashion-MNIST. The questions learners ask most often after
# "why are my samples noise?" are "how do I train on **my own folder** of pictures?", "what do I change
# for **colour**, for 32×32 or 64×64?" and "**how long** will it take?". This notebook answers them with
# a colour data set that works offline: about 1,900 **emoji** (Google's Noto Emoji) in nine categories,
# turned into an ordinary image folder by one command. The course ships a class-conditional model of
# them, `checkpoints/emoji_cfg.pt`, trained on a 2-core CPU by the ordinary `train` command, and a
# small emoji classifier that measures its samples, as the Fashion-MNIST classifier did in notebooks 05-08.
#
# **Prerequisites.** Notebook 04 (training), 06 (DDIM) and 07 (classifier-free guidance).
#
# **Learning goals.** By the end you can
# 1. turn a folder of pictures into training data (`train/<class>/...` and `test/<class>/...`) and say
#    what the loader does with odd files: transparency, grey and palette images, EXIF rotation,
#    corrupt files, mixed sizes;
# 2. say what changes for colour (the channel count of the first and last layer, nothing else) and
#    what does not (the [-1, 1] range, the noise, the loss);
# 3. choose the UNet's levels and attention resolutions for 32 px and 64 px images;
# 4. train a colour model with the command line, sample it by category with guidance, and read its
#    classifier-FID against its real-vs-real floor and its conditional accuracy;
# 5. estimate the memory and compute of a 64-px model before renting a GPU, from a measured table;
# 6. recognise the usual failure modes: the wrong value range, too small a model or too short a run,
#    too few images (memorisation), and augmentation that leaks into the samples.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine, kernel
# start included; the sections' own total is printed by the last cell):
# - 2-core Intel Xeon with AMX (2026-12-07): 59 s (one run; the sections 55.1 s: §3 18.5 s, §4 18.7 s, §7 14.6 s).
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-07): 87-93 s (two runs; §3's 60 training steps, §4's
#   sampling and §7's short-run samples take nearly all of it).
# - 2-core AMD EPYC with AVX2 only, no native bf16 (2026-12-07): 278 s (one run; §3 103 s, §4 117 s, §7 51 s:
#   everything runs in float32 there).
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 12 s (AMD EPYC, AVX-512-BF16, 2026-12-07). Slower with fewer cores, no
#   native bf16 or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - The shipped model's training (30 minutes) and the guidance table (benchmarks/emoji_guidance.py) are
#   not run here; §5 reads the table from `benchmarks/results/emoji_guidance.json`.
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest) changes how long §3's training
# run is and how many images and sampler steps §4 and §7 use. Cells whose output depends on the size,
# the trained weights or a results file are marked `# NBVAL_IGNORE_OUTPUT`; the others print the same
# at both sizes and are checked by `pytest --nbval`.

# %%
# Setup: in Google Colab this fetches the course, installs ddpm_teach and the emoji source; elsewhere it does nothing.
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    if not os.path.isdir("/content/ddpm-teach"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/ddpm-teach/ddpm-teach", "/content/ddpm-teach"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/ddpm-teach"], check=True)
    subprocess.run([sys.executable, "-m", "ddpm_teach", "data", "emoji", "--download"], check=True)   # 74 MB from npm
    sys.path.insert(0, "/content/ddpm-teach")
    os.chdir("/content/ddpm-teach/notebooks")

# %% [markdown]
# ## Imports, the size knob and the shipped models

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports and the shipped models")      # the last cell prints the time per section

import json
import math
import tempfile
import tomllib
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from PIL import Image

import ddpm_teach.exercises.nb12
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, repo_root, timed
from ddpm_teach.data import load_dataset, to_model_range
from ddpm_teach.devices import pick_device
from ddpm_teach.emoji import CATEGORY_FOLDERS, build_emoji_folder, find_source
from ddpm_teach.evaluation import Evaluator
from ddpm_teach.forward import q_sample
from ddpm_teach.plotting import plot_loss_curve, show_images
from ddpm_teach.samplers import DDIMSampler, sample
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import preset_configs, random_hflip

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" or "ci"
DEVICE = pick_device("auto")               # a GPU if there is one (e.g. in Colab), else the CPU
PER_CLASS = by_size(full=6, ci=2)          # §4: samples per category and guidance scale
DDIM_STEPS = by_size(full=50, ci=10)       # §4, §7: DDIM steps
SCALES = (1.0, 3.0, 5.0)                   # §4: guidance scales (the same at both sizes; §5 measures them)
TRAIN_STEPS = by_size(full=60, ci=4)       # §3: optimizer steps of the short training run
DATA = repo_root() / "data" / "emoji"      # where `python -m ddpm_teach data emoji --out data/emoji` writes
WORK_DIR = Path(tempfile.mkdtemp(prefix="ddpm_teach_nb12_"))   # §3's short run writes its checkpoint here


def generator(seed: int) -> torch.Generator:
    """A fresh CPU generator: the only source of randomness of each draw."""
    return torch.Generator().manual_seed(seed)


# %% [markdown]
# ## 1. The data set: a folder of pictures
#
# The package reads **an image folder with one sub-folder per class**, the layout of torchvision's
# `ImageFolder` and of most tutorials: `flowers/daisy/001.jpg`, `flowers/tulip/002.jpg`, ... The class
# of an image is the name of its sub-folder; the labels follow the sorted names. A folder that also
# holds a held-out split uses `train/<class>/...` and `test/<class>/...`: training reads `train/`,
# and measuring (FID, a classifier's accuracy) compares against `test/`.
#
# The emoji come from the npm package `emoji-datasource-google` (iamcal/emoji-data): Google's Noto
# Emoji as 64×64 PNGs with transparency (Apache License 2.0; the flags are in the public domain), and
# an `emoji.json` that gives every emoji's category. `scripts/setup.sh` downloads it once (74 MB);
# in Colab the setup cell does. Then one command builds the folder:
#
# ```bash
# python -m ddpm_teach data emoji --out data/emoji --size 32
# ```
#
# It makes these choices, each of which you would make for your own pictures too:
# - **transparency** is composited on **white**, what an emoji looks like on a page (a plain
#   `convert("RGB")` would put it on black);
# - **skin tones**: many people emoji also come in five skin tones besides the default yellow; the
#   variants are left out (`--skin-tones none`), so "people-body" is not six copies of itself; with `--skin-tones all`
#   a variant always goes to the **same split** as its base emoji, so that no recoloured copy of a
#   training image is "held out";
# - **the split** is a hash of each emoji's code points: about 15% overall, a little more or less in each
#   category (the cell below prints the range), stable across versions and sizes;
# - the category "Component" (five skin-tone swatches and hair styles) is not a picture and is left out.
#
# The next cell builds the folder if it is not there yet (a few seconds), and loads both splits.

# %%
ddpm_teach.course.section("1. The data set")
manifest_file = DATA / "manifest.json"
summary = json.loads(manifest_file.read_text())["summary"] if manifest_file.is_file() else None
if summary is None or (summary["size"], summary["skin_tones"]) != (32, "none"):
    find_source()                          # a missing source is an error that says how to get it
    summary = build_emoji_folder(DATA, size=32, overwrite=True, progress=False)   # the command's defaults
train_data = load_dataset(DATA, train=True)
test_data = load_dataset(DATA, train=False)
print(train_data)
print(test_data)
print(f"classes (label: folder): {dict(enumerate(train_data.classes))}")
print(f"source: {summary['source']}")
print(f"licence: {summary['licence']}")

# %%
fig, ax = plt.subplots(figsize=(7, 3))
train_counts = torch.bincount(train_data.labels, minlength=train_data.num_classes)
test_counts = torch.bincount(test_data.labels, minlength=test_data.num_classes)
positions = torch.arange(train_data.num_classes)
ax.barh(positions, train_counts, label="train")
ax.barh(positions, test_counts, left=train_counts, label="test (held out)")
ax.set_yticks(positions.tolist(), train_data.classes)
ax.invert_yaxis()
ax.set_xlabel("images")
ax.set_title("The emoji per category")
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()
largest, smallest = int(train_counts.argmax()), int(train_counts.argmin())
shares = test_counts / (train_counts + test_counts)
print(f"{len(train_data)} training and {len(test_data)} held-out emoji ({len(test_data) / (len(train_data) + len(test_data)):.1%} "
      f"held out; per category {shares.min():.1%} to {shares.max():.1%}); the largest category, "
      f"{train_data.classes[largest]}, has {int(train_counts.max())} training images, {train_counts.max() / train_counts.min():.1f} "
      f"times the smallest, {train_data.classes[smallest]} ({int(train_counts.min())})")

# %% [markdown]
# The categories are unequal (the ratio is printed above). A class-conditional model still gets every category when asked, because the label says which; an
# unconditional one would draw the largest category several times as often as the smallest (the ratio
# printed above).
#
# Eight training emoji of each category:

# %%
first_of_each = torch.cat([torch.nonzero(train_data.labels == k)[:8, 0] for k in range(train_data.num_classes)])
show_images(to_model_range(train_data.images[first_of_each]), nrow=8,
            title="Training emoji, one row per category (" + ", ".join(train_data.classes) + ")")
plt.show()

# %% [markdown]
# **Your own folder.** `load_dataset("path/to/folder", image_size=64)` (or `train --dataset
# path/to/folder --image-size 64`) reads any such folder. Photos come in every shape, so the loader
# gives each kind of odd file a rule (tested in `tests/test_image_folder.py`):
#
# | what is in the folder | what happens |
# |---|---|
# | JPEG, PNG, WebP, BMP, GIF, TIFF of mixed sizes | with `image_size`: each is made square and resized; without it: refused, naming two files and their sizes |
# | landscape and portrait photos | `crop="center"` (default) cuts the middle square; `crop="resize"` squashes the whole picture (`--crop resize`) |
# | phone photos with an EXIF rotation | turned upright first |
# | RGBA / palette images with transparency | composited on white |
# | grey, 16-bit grey, palette, CMYK | grey if *every* image is grey, else all become RGB; 16-bit is scaled to 0..255 |
# | corrupt files, `.txt`, `Thumbs.db`, `.DS_Store` | skipped, with one warning line that counts them and names the first few |
# | a class sub-folder without any readable image | not a class |
# | fewer than 2 images | refused; fewer than 100: `train` warns that the model will memorise them |
#
# Decoding thousands of JPEGs takes minutes, so the decoded images are cached on disk
# (`~/.cache/ddpm_teach/folders/`, keyed by every file's name, size and time stamp): the second run
# starts at once, and a changed file is decoded again.
#
# Three more things to know about your own folder:
# - **a flat folder** (all pictures directly inside it) is refused, because the class is the sub-folder:
#   put them in one sub-folder (`mkdir photos && mv img_align_celeba photos/faces`). An unconditional
#   model (no `--conditional`) reads the sub-folders but ignores their names;
# - **a held-out split** is yours to make: move about 15% of each class's files into `test/<class>/`
#   (and the rest into `train/<class>/`). Without `test/`, there is nothing held out, and FID or §7's
#   memorisation test would compare the samples with the very images the model trained on;
# - **scoring** needs a classifier that knows your classes: `python -m ddpm_teach train-classifier
#   --dataset FOLDER --out my_classifier.pt` (it needs the `train/` + `test/` split, and two classes or
#   more), then `evaluate --classifier my_classifier.pt`. For photos, an Inception-based FID tool
#   (clean-fid, torch-fidelity) on the images of `sample --out x.npz` is the standard measure.
#
# The next cell makes a folder with one of each kind of odd file and loads it: the warning lines name
# what was skipped, and the pictures come out square, upright and on white.

# %%
# NBVAL_IGNORE_OUTPUT
odd = WORK_DIR / "odd_folder"
for name in ("cats", "dogs"):
    (odd / name).mkdir(parents=True)
yy, xx = np.mgrid[:40, :60]
photo = np.stack([xx * 4, yy * 6, np.full_like(xx, 90)], -1).astype(np.uint8)            # a 60x40 landscape
rgba = np.zeros((40, 40, 4), np.uint8)
rgba[10:30, 10:30] = (220, 40, 40, 255)                                                    # a red square, rest transparent
Image.fromarray(photo).save(odd / "cats" / "landscape.jpg")
exif = Image.Exif()
exif[0x0112] = 6                                                                           # EXIF: "rotate 90° to view"
Image.fromarray(photo).save(odd / "cats" / "phone_photo.jpg", exif=exif)
Image.fromarray(rgba, "RGBA").save(odd / "cats" / "transparent.png")
Image.fromarray(photo[:, :, 1]).save(odd / "dogs" / "grey.jpg")
Image.fromarray(photo).convert("P", palette=Image.ADAPTIVE, colors=16).save(odd / "dogs" / "palette.gif")
(odd / "dogs" / "broken.jpg").write_bytes(b"this is not a JPEG")
(odd / "dogs" / "Thumbs.db").write_bytes(b"\0" * 64)
(odd / "dogs" / "notes.txt").write_text("taken in May")
folder = load_dataset(odd, image_size=32)       # prints a warning line (stderr) naming what it skipped
print(folder, "classes:", folder.classes)
show_images(to_model_range(folder.images), nrow=len(folder), labels=folder.labels, class_names=folder.classes)
plt.show()

# %% [markdown]
# ## 2. What changes for colour
#
# Almost nothing. A colour image is a tensor `[3, H, W]`: three channels, red, green and blue, each a
# grey image of its own. Everything the course did to one channel it now does to three:
# - the **value range**: each channel goes from 0..255 to [-1, 1] by $x = u/127.5 - 1$, as before;
# - the **noise** $\varepsilon \sim \mathcal N(0, I)$ has the image's shape, so each channel of each pixel
#   gets its own independent noise; the forward process $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$
#   is the same formula;
# - the **loss** is the mean of $(\varepsilon - \hat\varepsilon)^2$ over all $3HW$ numbers.
#
# What differs is the data's statistics: Fashion-MNIST has a black background ($-1$), the emoji a
# white one ($+1$), and each channel has its own mean. The cell prints both. It matters for checking
# samples: a model that has learnt the colours gives samples with about the data's per-channel means
# (a colour cast shows up there first), and a white background is where noise left in a sample shows.

# %%
ddpm_teach.course.section("2. What changes for colour")
x_emoji = to_model_range(train_data.images)                               # (N, 3, 32, 32) in [-1, 1]
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
for channel, colour in enumerate(("red", "green", "blue")):
    axes[0].hist(x_emoji[:, channel].flatten(), bins=51, histtype="step", color=colour, label=colour, density=True)
axes[0].set_title("Emoji: the three channels in [-1, 1]")
axes[0].set_yscale("log")
axes[0].legend(loc="upper left")
axes[0].set_xlabel("pixel value")
fashion = load_dataset("fashion_mnist", train=False)
axes[1].hist(to_model_range(fashion.images).flatten(), bins=51, histtype="step", color="black", density=True)
axes[1].set_title("Fashion-MNIST (test split): its one channel")
axes[1].set_yscale("log")
axes[1].set_xlabel("pixel value")
plt.tight_layout()
plt.show()
print(f"mean pixel in [-1, 1]: emoji {x_emoji.mean():+.3f} (R {x_emoji[:, 0].mean():+.3f}, G {x_emoji[:, 1].mean():+.3f}, "
      f"B {x_emoji[:, 2].mean():+.3f}); Fashion-MNIST {to_model_range(fashion.images).mean():+.3f}")
print(f"share of pixels that are pure background: emoji white {(x_emoji == 1).all(1).float().mean():.1%}, "
      f"Fashion-MNIST black {(fashion.images == 0).float().mean():.1%}")

# %% [markdown]
# The forward process on colour images: the noise is coloured because each channel gets its own. By
# t = 500 the emoji and their background can no longer be told apart.

# %%
schedule = load_diffusion_model(checkpoint_path("emoji_cfg.pt"), device="cpu")[1]
show_t = (0, 100, 250, 500, 750, 999)
x0_four = x_emoji[first_of_each[::16][:4]]                               # four emoji, (4, 3, 32, 32)
noise = torch.randn(x0_four.shape, generator=generator(1))
rows = [q_sample(schedule, x0_four, torch.full((4,), t), noise) for t in show_t]
show_images(torch.stack(rows, 1).flatten(0, 1), nrow=len(show_t),
            title="x_t at t = " + ", ".join(map(str, show_t)) + " (one row per emoji)")
plt.show()

# %% [markdown]
# **The UNet.** The network's input and output have the image's channel count; everything in between
# is the same. `train` reads it from the data (`in_channels = 3`), so there is no flag for it. Two
# layers change: `conv_in` (C → base channels) and `conv_out` (base channels → C; the ε̂ of all three
# channels at once).
#
# **The levels and the attention.** A UNet halves the image at each level. The rule of thumb: one level
# per factor 2, until the lowest level is about 8×8, small enough for attention to be cheap and for each
# position to see much of the picture. The course's 28-px model has three levels, 28 → 14 → 7, with
# attention at 7×7; the 64-px photo recipe (§6) has four, 64 → 32 → 16 → 8. The emoji model goes one
# level further than the rule, 32 → 16 → 8 → 4 (`channel_mults 1 2 2 2`), because a measurement said so:
# on 2 CPU cores the fourth level cost no speed and added width (`checkpoints/README.md`). It attends at
# 8×8 and 4×4 (`attention_resolutions 8 4`): 64 and 16 positions. Attention at 32×32 would score
# 1,024 × 1,024 pairs per head (exercise 3 counts the 64-px case).

# %%
emoji_model, _, emoji_ckpt = load_diffusion_model(checkpoint_path("emoji_cfg.pt"), device=DEVICE)
fashion_model, _, _ = load_diffusion_model(checkpoint_path("fashion_mnist_cfg.pt"), device="cpu")
for name, model in (("emoji_cfg.pt", emoji_model), ("fashion_mnist_cfg.pt", fashion_model)):
    c = model.config
    print(f"{name:<21} {c.in_channels} channel(s) at {c.image_size}px; levels {c.channel_mults}, attention at "
          f"{c.attention_resolutions}; conv_in {tuple(model.conv_in.weight.shape)}, conv_out "
          f"{tuple(model.conv_out.weight.shape)}; {model.num_parameters():,} parameters")
sizes = [emoji_model.config.image_size // 2 ** level for level in range(len(emoji_model.config.channel_mults))]
print(f"emoji model's levels: {' -> '.join(f'{s}x{s}' for s in sizes)} px")
colour_cost = sum(p.numel() for layer in (emoji_model.conv_in, emoji_model.conv_out) for p in layer.parameters()) - \
    sum(p.numel() for layer in (fashion_model.conv_in, fashion_model.conv_out) for p in layer.parameters())
print(f"of the {emoji_model.num_parameters() - fashion_model.num_parameters():,} extra parameters, colour (conv_in and "
      f"conv_out) accounts for {colour_cost:,}; the rest is the fourth level")

# %% [markdown]
# ## 3. Training a colour model
#
# The shipped model was trained with the ordinary command line, with no special case for emoji or for
# colour:
#
# ```bash
# python -m ddpm_teach train --preset cpu-fast --dataset data/emoji --conditional \
#     --channel-mults 1 2 2 2 --attention-resolutions 8 4 --no-compile --max-minutes 30 --out-dir runs/emoji
# python -m ddpm_teach export --checkpoint runs/emoji/checkpoint.pt --out checkpoints/emoji_cfg.pt
# ```
#
# (`configs/colour32_cpu.toml` holds the same settings as a file:
# `python -m ddpm_teach train --config configs/colour32_cpu.toml`.) `--preset cpu-fast` is the CPU
# recipe of notebook 04: base 32, one ResBlock per level, batch 64, lr 1e-3, EMA 0.995, and its start-up
# probe (`--probe-setup`, notebook 04 §12), which times float32, bf16 autocast (only where the CPU computes
# bf16 natively) and channels_last, and trains with the fastest. `--conditional` trains one model for
# all nine categories, with label dropout 0.1 so that classifier-free guidance works (notebook 07).
# `--no-compile` keeps torch.compile out of the probe: compiling this 32-px model took minutes on the
# 2-core AMD EPYC it was trained on, where compiled training was no faster. The shipped model predates
# the probe and was trained in bf16 eager; `checkpoints/README.md` gives the flags that repeat it
# exactly (`--no-probe-setup --mixed-precision bf16`). The cell below prints what the checkpoint records
# about its run.

# %%
ddpm_teach.course.section("3. Training a colour model")
cfg = emoji_ckpt["train_config"]
steps = emoji_ckpt["step"]
print(f"emoji_cfg.pt: {steps:,} steps x batch {cfg['batch_size']} = {steps * cfg['batch_size']:,} images seen, "
      f"{steps * cfg['batch_size'] / len(train_data):.0f} passes over the {len(train_data)} training emoji; "
      f"budget --max-minutes {cfg['max_minutes']:g}, precision {cfg['mixed_precision']}, compile {cfg['compile']}")
print(f"labels: {emoji_model.config.num_classes} categories + the null label {emoji_model.config.num_classes} "
      f"(dropped with p = {cfg['label_dropout']}); data set recorded in the checkpoint: {emoji_ckpt['dataset']['name']!r}")
fig = plot_loss_curve(emoji_ckpt["loss_history"])
fig.axes[0].set_title("The shipped model's training loss (raw and smoothed)")
plt.show()

# %% [markdown]
# The same recipe, for a few steps, from Python: `preset_configs` turns the preset and the options
# into the `(TrainConfig, UNetConfig)` pair that `Trainer` takes. `probe_setup=False` skips the probe,
# which would cost more than these few steps; the preset's precision (bf16 where the CPU has it
# natively, else float32) is used as it is, and the cell prints which. At this length the model has only
# begun to learn, which is the point of §7's "too short a run". (The first loss is 1.000 because a
# fresh UNet's last conv is zero: it predicts ε̂ = 0, and E[ε²] = 1.)

# %%
# NBVAL_IGNORE_OUTPUT
train_config, model_config = preset_configs(
    "cpu-fast", dataset=str(DATA), conditional=True, image_size=32, channel_mults=(1, 2, 2, 2), attention_resolutions=(8, 4),
    compile=False, probe_setup=False, max_minutes=None, steps=TRAIN_STEPS, warmup_steps=max(1, TRAIN_STEPS // 10),
    checkpoint_every=0, log_every=10, out_dir=str(WORK_DIR / "short"))
with timed(f"{TRAIN_STEPS} training steps of the shipped model's recipe"):
    short = Trainer(train_config, model_config, data=train_data)
    short.train(progress=False)
print(f"{short.model.num_parameters():,} parameters; loss {short.loss_history[0]:.3f} at the first step, "
      f"{short.loss_history[-1]:.3f} at step {short.step} "
      f"({'float32' if train_config.mixed_precision == 'no' else train_config.mixed_precision + ' autocast'}, eager); "
      f"the shipped model ended near {sum(emoji_ckpt['loss_history'][-100:]) / 100:.3f} (mean of its last 100 steps)")

# %% [markdown]
# ## 4. Samples by category, and a guidance sweep
#
# Sampling is notebook 07's: DDIM with classifier-free guidance,
# $\tilde\varepsilon = \varepsilon_\text{uncond} + s\,(\varepsilon_\text{cond} - \varepsilon_\text{uncond})$.
# Each scale below starts from the **same noise**, so the rows differ only in $s$. On the command line:
#
# ```bash
# python -m ddpm_teach sample --checkpoint checkpoints/emoji_cfg.pt --labels all --guidance-scale 3 --n 64 --out grid.png
# ```

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section("4. Samples by category and a guidance sweep")
labels = torch.arange(train_data.num_classes).repeat_interleave(PER_CLASS)      # PER_CLASS of category 0, then 1, ...
x_T = torch.randn((len(labels), 3, 32, 32), generator=generator(0))
sampler = DDIMSampler(schedule, steps=DDIM_STEPS)
samples = {}
with timed(f"{len(SCALES)} guidance scales x {len(labels)} images, DDIM-{DDIM_STEPS}"):
    for scale in SCALES:
        samples[scale] = sample(emoji_model, sampler, labels=labels, guidance_scale=scale, x_T=x_T, device=DEVICE,
                                progress=False, precision="auto").cpu()
print(f"{sampler!r}: {sampler.nfe} steps, each guided step runs the model on the conditional and the unconditional "
      f"batch; {len(labels)} images per scale, {PER_CLASS} per category")

# %%
# NBVAL_IGNORE_OUTPUT
fig, axes = plt.subplots(1, len(SCALES), figsize=(3.4 * len(SCALES), 5.4))
for ax, scale in zip(axes, SCALES):
    show_images(samples[scale], nrow=PER_CLASS, ax=ax, title=f"s = {scale:g}")
fig.suptitle("One row per category: " + ", ".join(train_data.classes), fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the figure row by row: each row asks for one category, top to bottom in the order printed
# above it. Without guidance ($s = 1$) the model draws from each category's distribution as it learnt
# it; a larger $s$ pushes each sample towards what makes the category recognisable, most visibly in the
# people and smiley rows, where blobs become faces. Flags are flag-shaped at every scale; objects,
# animals and food stay the hardest. §5 measures how the scale changes FID and conditional accuracy.
# (`precision="auto"` runs the network under bf16 autocast where the CPU or GPU computes bf16 natively,
# and in float32 elsewhere: on a CPU without AMX or AVX-512-BF16, bf16 is emulated and many times
# slower. Notebook 04's quality tables (README, "Results") found no FID change from bf16 sampling
# beyond the seed spread.)

# %% [markdown]
# ## 5. The scores
#
# The Fashion-MNIST classifier cannot judge emoji, so the course ships a second one,
# `checkpoints/emoji_classifier.pt`: the same small CNN, trained the same way on the 32×32 training
# emoji (`python -m ddpm_teach train-classifier --dataset data/emoji --epochs 40 --batch-size 64
# --out checkpoints/emoji_classifier.pt`). Its features give **classifier-FID** against the held-out
# emoji, and its predictions the **conditional accuracy**: the share of samples asked for category k that
# it puts in category k. `evaluate` picks the classifier that matches the checkpoint's images:
#
# ```bash
# python -m ddpm_teach evaluate --checkpoint checkpoints/emoji_cfg.pt --labels all --guidance-scale 3 --n 900
# ```
#
# Two cautions make these numbers harder to read than Fashion-MNIST's:
# - the reference set is small (a few hundred held-out emoji), so even real images do not score 0:
#   always read the FID next to its **real-vs-real floor**, the FID of real training emoji against it;
# - the categories overlap (is a clock an object, or travel-and-places?), so the classifier itself is
#   right on held-out emoji only part of the time; the next cell prints how often.

# %%
ddpm_teach.course.section("5. The scores")
classifier_ckpt = torch.load(checkpoint_path("emoji_classifier.pt"), weights_only=True)
print(f"emoji_classifier.pt: trained on {classifier_ckpt['dataset']!r}; held-out accuracy "
      f"{classifier_ckpt['test_accuracy']:.1%} on {classifier_ckpt['test_n']} emoji "
      f"(chance: {1 / len(classifier_ckpt['classes']):.1%})")

# %% [markdown]
# The table below was measured by `benchmarks/emoji_guidance.py` (N samples per scale and seed, two
# sampling seeds; DDIM-50); this cell reads its JSON.

# %%
# NBVAL_IGNORE_OUTPUT
guidance_results = json.loads((repo_root() / "benchmarks" / "results" / "emoji_guidance.json").read_text())
display(Markdown((repo_root() / "benchmarks" / "results" / "emoji_guidance.md").read_text()))
table = guidance_results["summary"]
fig, ax_fid = plt.subplots(figsize=(6, 3.2))
ax_fid.errorbar([r["scale"] for r in table], [r["fid_mean"] for r in table], yerr=[r["fid_spread"] / 2 for r in table],
                fmt="o-", color="C0", capsize=3, label="classifier-FID (bars: from the lowest to the highest seed)")
ax_fid.axhline(guidance_results["floor"]["fid"], color="C0", linestyle=":", label="real-vs-real floor")
ax_fid.set_xlabel("guidance scale s")
ax_fid.set_ylabel("classifier-FID (lower is better)", color="C0")
ax_acc = ax_fid.twinx()
ax_acc.errorbar([r["scale"] for r in table], [100 * r["accuracy_mean"] for r in table],
                yerr=[50 * r["accuracy_spread"] for r in table], fmt="s-", color="C1", capsize=3,
                label="conditional accuracy (bars: the seeds' range)")
ax_acc.axhline(100 * classifier_ckpt["test_accuracy"], color="C1", linestyle=":",
               label="the classifier's accuracy on real held-out emoji")
ax_acc.set_ylabel("conditional accuracy (%)", color="C1")
handles = ax_fid.get_legend_handles_labels()
more = ax_acc.get_legend_handles_labels()
ax_fid.legend(handles[0] + more[0], handles[1] + more[1], loc="upper center", fontsize=8)
ax_fid.set_title(f"emoji_cfg.pt: N={guidance_results['n']} per scale and seed, seeds {guidance_results['seeds']}")
plt.tight_layout()
plt.show()
best = max(table, key=lambda r: r["accuracy_mean"])
lowest = min(table, key=lambda r: r["fid_mean"])
print(f"highest conditional accuracy: {best['accuracy_mean']:.1%} at s = {best['scale']:g} (seed spread "
      f"{100 * best['accuracy_spread']:.1f} points; the largest scale measured: {best['scale'] == table[-1]['scale']}), "
      f"against the classifier's {classifier_ckpt['test_accuracy']:.1%} on real held-out emoji")
print(f"lowest FID: {lowest['fid_mean']:.2f} at s = {lowest['scale']:g} (seed spread {lowest['fid_spread']:.2f}), "
      f"{lowest['fid_mean'] / guidance_results['floor']['fid']:.1f} times the floor of {guidance_results['floor']['fid']:.2f} "
      f"(N={guidance_results['floor']['n']})")

# %% [markdown]
# How to read these lines:
# - accuracy grows with $s$ over the whole sweep, so its "best" is the edge of what was measured, not an
#   optimum; FIDs whose difference is smaller than their seed spreads are a tie;
# - guided samples can be classified *more* reliably than real held-out emoji: guidance pushes each
#   sample towards the most typical picture of its category, and real emoji include the borderline
#   ones (a watch is an object, a clock a place);
# - a classifier-FID is only comparable with FIDs from the **same classifier and reference set**: these
#   cannot be compared with notebook 07's Fashion-MNIST numbers. Compare them with each other and with
#   the floor.

# %% [markdown]
# The same classifier on §4's few samples (a handful per category: far too few for an FID, but enough to
# see the trend with $s$):

# %%
# NBVAL_IGNORE_OUTPUT
evaluator = Evaluator.load(checkpoint_path("emoji_classifier.pt"), device=DEVICE)
for scale in SCALES:
    print(f"s = {scale:g}: {evaluator.accuracy(samples[scale], labels):.0%} of {len(labels)} samples classified "
          "as the category they were asked for")

# %% [markdown]
# ## 6. Scaling up: 64×64 photos on a GPU
#
# Emoji at 32 px fit a CPU. Faces (CelebA), cars or flowers at 64 px need a GPU, and the first question
# is whether the model fits its memory. `benchmarks/image_sizes.py` measures, on the CPU, what does not
# depend on the device: the parameters, the FLOPs per image, and the bytes that autograd saves for the
# backward pass per image (fp32 and 16-bit). From those it **estimates** the largest batch that fits a
# 16 GB GPU (a free Colab T4). The GPU column stays "not measured" until the script runs on a GPU.

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section("6. Scaling up: the photo recipe")
display(Markdown((repo_root() / "benchmarks" / "results" / "image_sizes.md").read_text()))

# %% [markdown]
# Two things to read off the table. Going from 32 to 64 px multiplies the pixels by 4, but the FLOPs and
# the activation memory of the same preset grow less (compare the rows of one model), because the
# extra 64-px level is the narrowest; the photos64 UNet is also wider, so it grows more. And the memory
# is mostly **activations**, which grow with the batch, not the weights: when a batch does not fit,
# gradient accumulation (`grad_accum`) gives the same effective batch from smaller micro-batches. The
# recipe's 64 × 2 keeps about a factor 2 in hand below the table's float32 estimate (more in 16-bit),
# because that estimate is not
# a GPU measurement; its comments say when to use `--batch-size 128 --grad-accum 1` (room left on the
# GPU) or `--batch-size 32 --grad-accum 4` (an 8 GB card).
#
# The recipe is a config file, `configs/photos64_gpu.toml`, tested on the CPU at a tiny batch
# (`tests/test_gpu_recipe.py`): four levels (64 → 32 → 16 → 8), attention at 16 and 8, base 64,
# 2 ResBlocks per level, batch 64 × 2 accumulated, mixed precision "auto" (fp16 with a gradient
# scaler on a T4, bf16 on newer GPUs), horizontal flips, a checkpoint every 1,000 steps for Colab's
# disconnects. Its comments explain each choice; here are its settings:

# %%
recipe = tomllib.loads((repo_root() / "configs" / "photos64_gpu.toml").read_text())
for key, value in recipe.items():
    print(f"{key:<24} {value}")

# %% [markdown]
# ```bash
# python -m ddpm_teach train --config configs/photos64_gpu.toml --dataset path/to/photos
# python -m ddpm_teach train --config configs/photos64_gpu.toml --dataset path/to/photos --resume   # after a disconnect
# ```
#
# How long? Not measured: no GPU was available when this was written. The cell below works out an
# estimate from the table's training FLOPs, with the assumption it rests on spelled out; time your own
# run from the progress bar's steps per second instead, and run `benchmarks/image_sizes.py` on your GPU
# to fill in the memory column. The recipe turns `hflip` on (right for faces, cars, flowers): add
# `--no-hflip` for pictures with text or logos. Beyond 64-128 px, train in a latent space (notebook 10).

# %%
# NBVAL_IGNORE_OUTPUT
sizes_rows = json.loads((repo_root() / "benchmarks" / "results" / "image_sizes.json").read_text())["rows"]
row64 = next(r for r in sizes_rows if r["model"] == "photos64" and r["image_size"] == 64)
flop_per_step = row64["train_gflop_per_image"] * 1e9 * recipe["batch_size"] * recipe["grad_accum"]
t4_peak = 65e12                                     # a T4's fp16 tensor-core peak, FLOP/s (NVIDIA's data sheet)
for utilisation in (0.15, 0.30):
    hours = recipe["steps"] * flop_per_step / (utilisation * t4_peak) / 3600
    print(f"{recipe['steps']:,} steps x {flop_per_step / 1e12:.1f} TFLOP at {utilisation:.0%} of a T4's peak: {hours:.1f} h "
          "(an assumption, not a measurement)")

# %% [markdown]
# ## 7. Common failure modes
#
# **The wrong value range.** The forward process assumes data in [-1, 1]. Images left in [0, 1] (what
# torchvision's `ToTensor` gives) have half the spread, so at every $t$ the signal is drowned sooner: the
# schedule, tuned for [-1, 1], then spends its steps at the wrong noise levels, and the samplers' clipping
# of $\hat x_0$ to [-1, 1] no longer matches the data. The same slip on the way out (showing [-1, 1]
# samples as if they were [0, 1], or the reverse) makes good samples look washed out or too dark.
# Colour adds one more: OpenCV reads BGR, not RGB, so red and blue swap (a blue-faced smiley). The
# package reads with Pillow (RGB), and `ddpm_teach.data.to_model_range` refuses anything but uint8 0..255,
# so the first slip cannot happen by accident here; this is what it would do to the forward process:

# %%
ddpm_teach.course.section("7. Common failure modes")
x0_right = x0_four                                  # [-1, 1]
x0_wrong = (x0_four + 1) / 2                        # [0, 1]: the ToTensor range
snr_t = 250
for name, x0 in (("[-1, 1]", x0_right), ("[0, 1]", x0_wrong)):
    signal = schedule.alphas_cumprod[snr_t] * x0.var()
    print(f"data in {name:<8}: pixel variance {x0.var():.3f}; at t = {snr_t} the signal-to-noise ratio "
          f"ᾱ_t·Var(x_0)/(1 − ᾱ_t) is {float(signal / (1 - schedule.alphas_cumprod[snr_t])):.3f}")
try:
    to_model_range(x0_wrong)
except TypeError as error:
    print(f"to_model_range on floats: TypeError: {error}")

# %% [markdown]
# **Too small a model, or too short a run.** Training goes through stages, and the samples show which one
# a model stopped in: first coloured noise (below, left: §3's short run, whose loss was still far above the
# shipped model's), then blobs of the right colours in the right places without shapes (the shipped
# model's objects, food and travel rows, right), then shapes. The cure is more steps first (the loss
# curve says whether they still help), then more channels or a level more, which cost steps per minute:
# `checkpoints/README.md` lists the measured training rates of five UNet sizes that chose the shipped
# one. Notebook 03 §10 compares block designs at equal time.

# %%
# NBVAL_IGNORE_OUTPUT
short_samples = sample(short.ema.module, sampler, labels=labels, guidance_scale=3.0, x_T=x_T, device=short.device,
                       progress=False).cpu()
fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.6))
show_images(short_samples, nrow=PER_CLASS, ax=axes[0], title=f"after {short.step} steps (§3)")
show_images(samples[3.0], nrow=PER_CLASS, ax=axes[1], title=f"the shipped model ({steps:,} steps)")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Too few images: memorisation.** 1,630 training emoji, each seen over a hundred times (§3), is the
# setting where a model can learn its training set by heart. The test: for each sample, the **nearest
# training image**, and the same for each *held-out* emoji. A model that generalises makes samples about as
# far from the training set as new real images are; one that memorises makes copies, much closer.

# %%
# NBVAL_IGNORE_OUTPUT
def nearest_train(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For images [N, 3, 32, 32] in [-1, 1]: the RMS pixel distance to the nearest training emoji, and its index."""
    distances = torch.cdist(images.flatten(1), x_emoji.flatten(1)) / math.sqrt(images[0].numel())
    return distances.min(1)


sample_distance, sample_nearest = nearest_train(samples[3.0])
held_out_distance, _ = nearest_train(to_model_range(test_data.images))
print(f"RMS distance to the nearest training emoji: samples (s = 3) median {sample_distance.median():.3f}; "
      f"held-out emoji median {held_out_distance.median():.3f}")
print(f"samples closer to a training emoji than 0.05 (a near copy): {(sample_distance < 0.05).float().mean():.0%}; "
      f"held-out emoji that close: {(held_out_distance < 0.05).float().mean():.0%}")
pairs = torch.stack([samples[3.0][::PER_CLASS], x_emoji[sample_nearest[::PER_CLASS]]], 1).flatten(0, 1)
show_images(pairs, nrow=6, title="each sample (s = 3, one per category) next to its nearest training emoji")
plt.show()

# %% [markdown]
# How to read the two medians: samples much *closer* to the training set than held-out emoji are (and a
# share of near copies well above the held-out share) mean memorisation, and then a good FID rewards
# recall, not invention. Samples *farther* away than held-out emoji mean the opposite problem: the model
# has not yet learnt the training set's details, which is what 30 CPU minutes give here; the pairs show
# samples that borrow a training emoji's layout and colours without copying it. With your own folder,
# run this check before you believe a good FID: memorisation calls for a smaller model, fewer steps, or
# more data (flips, if they are safe; next).
#
# **Augmentation that leaks into the samples.** Augmentation multiplies a small data set, but the model
# learns the augmented distribution, so its samples show it. Horizontal flips (`--hflip`) are safe for
# faces, cars and flowers; for emoji they are not: text, digits, arrows and flags have a handedness.
# (Rotation is not offered at all: a model trained on rotated digits draws rotated digits.)

# %%
names = json.loads(manifest_file.read_text())["images"]
by_name = {row["short_name"]: DATA / row["file"] for row in names}
handed = [by_name[name] for name in ("abc", "1234", "arrow_right", "us", "leftwards_arrow_with_hook", "clock3", "sos",
                                     "point_right")
          if name in by_name]
originals = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in handed])
flipped = random_hflip(to_model_range(originals), generator(0), p=1.0)
show_images(torch.cat([to_model_range(originals), flipped]), nrow=len(handed),
            title="top: emoji; bottom: the same mirrored, what --hflip would teach the model")
plt.show()

# %% [markdown]
# ## 8. Exercises
#
# **Exercise 1.** An orange pixel of a PNG has $(R, G, B) = (255, 128, 0)$. Which three numbers does the
# model see for it? Give at least 3 decimals, and check with `ddpm_teach.exercises.nb12.check_model_range((r, g, b))`.
#
# **Exercise 2.** The UNet's first layer, `conv_in`, is a 3×3 convolution from the image's $C$ channels to
# `base_channels` = 32, with a bias. How many parameters does it have for colour images ($C = 3$)? Check
# with `ddpm_teach.exercises.nb12.check_conv_in_params(n)`.
#
# **Exercise 3.** The 64-px photo recipe (§6) attends at the 16×16 level, where each position is a token.
# How many entries has one attention head's score matrix, for one image? Check with
# `ddpm_teach.exercises.nb12.check_attention_entries(n)`.
#
# **Exercise 4.** A run of 3,000 steps at batch 64 on the 1,630 training emoji: how many passes over the
# data set (epochs) is that? Give at least one decimal, and check with
# `ddpm_teach.exercises.nb12.check_epochs(epochs)`.
#
# Try them in the next cell; a worked solution to each is in **Solutions** at the end of the notebook
# (hidden; click to show).

# %%
ddpm_teach.course.section("8. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb12.check_model_range((..., ..., ...))
# ddpm_teach.exercises.nb12.check_conv_in_params(...)
# ddpm_teach.exercises.nb12.check_attention_entries(...)
# ddpm_teach.exercises.nb12.check_epochs(...)

# %% [markdown]
# ## Summary
#
# * **Your own folder**: one sub-folder per class (`train/` and `test/` for a held-out split);
#   `train --dataset FOLDER --image-size N` reads it, with a rule for every odd file (§1), and caches the
#   decoded images.
# * **Colour** changes the tensor's shape, `[B, 3, H, W]`, and the UNet's first and last layer; the
#   range, the noise, the loss and the samplers are the same (§2).
# * **Size**: one UNet level per factor 2, down to about 8×8 (4×4 at 32 px); attention only at the
#   small levels (§2, §6).
# * **The emoji model** is the ordinary `train` command with `--conditional` on a folder; its samples by
#   category and guidance scale, and the scores with their floor, are in §4 and §5.
# * **64-px photos** need a GPU; the memory table and `configs/photos64_gpu.toml` say what fits (§6).
# * **Failure modes** (§7): [0, 1] instead of [-1, 1]; blobs from too small a model or too short a run;
#   copies of the training set from too few images; mirrored text from flips.
#
# **Further reading.** Dhariwal & Nichol 2021, *Diffusion Models Beat GANs on Image Synthesis* (the
# UNet choices per resolution); Karras et al. 2022, *Elucidating the Design Space* (augmentation that
# does not leak: the model is told which augmentation was applied); Carlini et al. 2023, *Extracting
# Training Data from Diffusion Models* (memorisation, measured); Somepalli et al. 2023, *Diffusion Art
# or Digital Forgery?* (the nearest-neighbour test of §7 at scale). The [Glossary](glossary.md)
# collects the notation.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of §8. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# Each channel on its own: x = u/127.5 − 1.
rgb = (255, 128, 0)
answer_1 = tuple(u / 127.5 - 1 for u in rgb)          # (1.0, 0.0039, -1.0)
assert torch.allclose(to_model_range(torch.tensor(rgb, dtype=torch.uint8)), torch.tensor(answer_1), atol=1e-6)
ddpm_teach.exercises.nb12.check_model_range(answer_1)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# 3x3 kernel x 3 input channels x 32 output channels, plus 32 biases.
answer_2 = 3 * 3 * 3 * 32 + 32
assert answer_2 == sum(p.numel() for p in emoji_model.conv_in.parameters())   # the shipped model has base 32
ddpm_teach.exercises.nb12.check_conv_in_params(answer_2)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
# 16·16 = 256 tokens; every token is scored against every token.
answer_3 = (16 * 16) ** 2
ddpm_teach.exercises.nb12.check_attention_entries(answer_3)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 4 (double-click to show the code)
# images seen = steps x batch; epochs = images seen / images in the set.
answer_4 = 3000 * 64 / 1630
ddpm_teach.exercises.nb12.check_epochs(answer_4)

# %% [markdown]
# ## Run time on your machine
#
# The cell below prints how long each section of this notebook took to run here, on this machine and
# at this size; compare it with the runtime note at the top. The printed total covers the sections only;
# the runtime note also counts starting the kernel and importing: typically 5-15 s more, and runs vary
# with the machine's load.

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section_times()

# %% [markdown]
# ← [11 · Flow matching](11_flow_matching.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md)
