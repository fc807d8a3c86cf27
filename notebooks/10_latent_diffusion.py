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
# # 10 · Latent diffusion: the idea behind Stable Diffusion
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/10_latent_diffusion.ipynb)
#
# ← [09 · Fast samplers](09_fast_samplers.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [11 · Flow matching →](11_flow_matching.ipynb)
#
# Every notebook so far ran the diffusion model on pixels. Most of what a pixel holds is detail that
# the eye barely notices, and the UNet pays for every one of them at every sampling step. Rombach et
# al. 2022, *High-Resolution Image Synthesis with Latent Diffusion Models*
# ([arXiv:2112.10752](https://arxiv.org/abs/2112.10752)), split the work in two: an **autoencoder**,
# trained once, squeezes the images into a small **latent** that keeps what matters; the diffusion model
# then learns and samples in that latent space, and the decoder turns its samples back into pixels.
# Stable Diffusion is this recipe with a text encoder added.
#
# This notebook builds it end to end with `ddpm_teach`, on the course's own data, and measures what the
# latent space buys: the same UNet class, training loop, samplers and guidance as before, two shipped
# checkpoints (`fashion_mnist_autoencoder.pt`, `fashion_mnist_latent.pt`), and a side-by-side benchmark
# against the pixel-space model at an equal training budget.
#
# **Prerequisites.** Notebook 04 (training), 06 (DDIM), 07 (classifier-free guidance) and 08 §4 (the KL
# divergence between two Gaussians); notebook 09's solvers appear once.
#
# **Learning goals.** By the end you can
# 1. explain why diffusion in pixel space is expensive, and the difference between *perceptual* and
#    *semantic* compression (Rombach et al. Fig. 2);
# 2. describe the KL-regularised autoencoder: the encoder's diagonal Gaussian, the reconstruction loss,
#    and the KL term, whose closed form you compute by hand;
# 3. look at latents (their channels as images, and interpolation between two of them), and measure
#    reconstruction quality with classifier-FID against its floor;
# 4. compute the latent **scale factor** that gives the latents unit variance, and say why the diffusion
#    model needs it (for Stable Diffusion's autoencoder this number is 0.18215);
# 5. train a diffusion model on latents with the course's `Trainer`, and sample decoded, guided images;
# 6. read a measured table of latent against pixel diffusion at an equal budget, and say what wins where;
# 7. map each piece onto Stable Diffusion: the VAE, the UNet, the text encoder's cross-attention, the scale factor.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-12-07): 93-103 s (three runs)
# - 2-core AMD EPYC, AVX-512-BF16, no AMX: not measured (this notebook was written on the Xeon machine only).
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 12-14 s (Xeon with AMX, 2026-12-07). Slower with
#   fewer cores, no native bf16 or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - §8's table is read from `benchmarks/results/latent_vs_pixel.json`, and §1's from
#   `benchmarks/results/autoencoder_sweep.json`, not computed here: their benchmarks train two models for
#   15 minutes each and four autoencoders for 5 minutes each.
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest) changes how many images the
# figures show and the scores use, how long §6's training run is, and how many sampling steps §7 takes.
# The maths cells (the KL term, the loss by hand, the shapes, the scale factor on a fixed batch, the
# exercises) print the same at both sizes and are checked by `pytest --nbval`; cells whose output depends
# on the size, the trained weights or a benchmark file are marked `# NBVAL_IGNORE_OUTPUT`.

# %%
# Setup: in Google Colab this fetches the course and installs ddpm_teach; elsewhere it does nothing.
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    if not os.path.isdir("/content/ddpm-teach"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/ddpm-teach/ddpm-teach", "/content/ddpm-teach"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/ddpm-teach"], check=True)
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
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import ddpm_teach.exercises.nb10
from ddpm_teach.autoencoder import (Autoencoder, AutoencoderConfig, autoencoder_loss, kl_divergence,
                                    latent_scale_factor, load_autoencoder, reconstruct)
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, repo_root, timed
from ddpm_teach.data import load_dataset, to_model_range
from ddpm_teach.devices import cpu_has_native_bf16, pick_device
from ddpm_teach.evaluation import Evaluator
from ddpm_teach.latent import LatentCodec, encode_dataset, load_latent_model
from ddpm_teach.plotting import plot_loss_curve, show_images
from ddpm_teach.samplers import DDIMSampler, sample
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import TrainConfig

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" or "ci"
DEVICE = pick_device("auto")               # a GPU if there is one (e.g. in Colab), else the CPU
PRECISION = "bf16" if DEVICE.type == "cuda" or cpu_has_native_bf16() else "fp32"   # the UNet's, while sampling
N_SHOW = by_size(full=8, ci=4)             # images per row in the figures
N_SCORE = by_size(full=1000, ci=100)       # §4: test images reconstructed and scored
TRAIN_IMAGES = by_size(full=60_000, ci=2_000)   # §6: training images encoded for the short run
TRAIN_STEPS = by_size(full=400, ci=20)     # §6: optimizer steps of the short run
SAMPLE_STEPS = by_size(full=50, ci=10)     # §7: DDIM steps
WORK_DIR = Path(tempfile.mkdtemp(prefix="ddpm_teach_nb10_"))   # §6's short run writes its checkpoint here


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


AE_PATH = checkpoint_path("fashion_mnist_autoencoder.pt")
autoencoder, _, ae_ckpt = load_autoencoder(AE_PATH, device=DEVICE)       # §2-§4 look at it
latent_model, latent_schedule, codec, latent_ckpt = load_latent_model(checkpoint_path("fashion_mnist_latent.pt"),
                                                                      device=DEVICE)
pixel_model, pixel_schedule, pixel_ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_cfg.pt"), device=DEVICE)
test_data = load_dataset("fashion_mnist", train=False)
CLASSES = test_data.classes
print(f"autoencoder: {autoencoder.num_parameters():,} parameters, {autoencoder.config.image_size}×"
      f"{autoencoder.config.image_size}×{autoencoder.config.in_channels} → latent {autoencoder.config.latent_shape}")
print(f"the latent checkpoint embeds this same autoencoder (SHA-256 match): {ae_ckpt['sha256'] == codec.record['sha256']}")
print(f"latent diffusion UNet: {latent_model.num_parameters():,} parameters on {latent_model.config.in_channels}×"
      f"{latent_model.config.image_size}×{latent_model.config.image_size} latents; "
      f"pixel-space UNet (notebook 07): {pixel_model.num_parameters():,} parameters on 1×28×28 images")

# %% [markdown]
# ## 1. Why pixels are expensive
#
# A diffusion model spends its whole sampling budget (50 DDIM steps, or 1000 DDPM steps, notebook 05)
# running a UNet at the resolution of its input. Rombach et al. (§1 and Fig. 2) observe that the
# **rate-distortion** curve of images has two regimes. Most of the bits of an image describe
# imperceptible, high-frequency detail: throwing them away is **perceptual compression**, and a
# good autoencoder does it with little visible loss. The remaining bits hold the composition and
# meaning of the image, **semantic compression**, and that is the part worth a generative model.
# Latent diffusion gives the first job to an autoencoder, trained once, and the second to the diffusion
# model, which now works on far fewer numbers. (**Rate-distortion**: how much information, the *rate*,
# a compressed code keeps against how much the reconstruction differs from the original, the
# *distortion*; each compressor is a point on that curve.)
#
# The autoencoder has one stride-2 downsampling between each pair of its levels (`channel_mults`), so
# its **downsampling factor** is $f = 2^{	ext{levels} - 1}$; the shipped one has three levels, so
# $f = 4$: each 28×28 image becomes a 7×7 grid with $c$ channels. Fewer numbers per image should mean a
# cheaper UNet per step, but the latent UNet is also wider (base 64 channels against 32), so the
# cost is measured, not assumed:

# %%
ddpm_teach.course.section("1. Why pixels are expensive")
image_numbers = autoencoder.config.in_channels * autoencoder.config.image_size ** 2
latent_numbers = math.prod(autoencoder.config.latent_shape)
print(f"autoencoder channel_mults {autoencoder.config.channel_mults}: {len(autoencoder.config.channel_mults)} levels, "
      f"f = 2^{len(autoencoder.config.channel_mults) - 1} = {autoencoder.config.factor}")
print(f"numbers per image: pixels {image_numbers}, latent {latent_numbers} "
      f"({autoencoder.config.latent_shape[0]}×{autoencoder.config.latent_size}×{autoencoder.config.latent_size}): "
      f"{image_numbers / latent_numbers:g}x fewer, f = {autoencoder.config.factor}")
print(f"pixel UNet feature maps: {pixel_model.config.resolutions}; latent UNet: {latent_model.config.resolutions} "
      "(7 cannot be halved, so the latent UNet has one level, with attention over all 49 positions)")

# %%
# NBVAL_IGNORE_OUTPUT
# The cost of one network evaluation, 64 images, each UNet at its own input size (timed here, on this machine)
def seconds_per_call(model, shape, labels, repeats=5):
    x = torch.randn(64, *shape, device=DEVICE)
    t = torch.full((64,), 500, device=DEVICE)
    with torch.no_grad(), torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=PRECISION == "bf16"):
        model(x, t, labels)                                      # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(x, t, labels)
    return (time.perf_counter() - start) / repeats


labels_64 = torch.arange(64, device=DEVICE) % 10
pixel_call = seconds_per_call(pixel_model, (1, 28, 28), labels_64)
latent_call = seconds_per_call(latent_model, codec.latent_shape, labels_64)
print(f"one call on 64 images ({PRECISION}): pixel UNet {1000 * pixel_call:.1f} ms, latent UNet {1000 * latent_call:.1f} ms; "
      f"time ratio pixel/latent {pixel_call / latent_call:.2f} ({ddpm_teach.course.machine()})")

# %% [markdown]
# How small can the latent be? That is the rate-distortion question, measured. `benchmarks/autoencoder_sweep.py`
# trained the same autoencoder with $c$ = 2, 4 and 8 latent channels for the same 5 minutes each, and scored
# the reconstructions of 1000 test images with the classifier-FID of notebook 05 (lower is better).
# Two references: the **floor**, the FID of 1000 real *training* images (what a perfect generator scores
# at that $N$), and the FID of the same 1000 test images *unreconstructed*, what a perfect autoencoder
# would score (lower than the floor, because those images are part of the test set the FID compares
# against). One more row adds a *perceptual* term to the loss (§2). The table, read from the benchmark's JSON:

# %%
# NBVAL_IGNORE_OUTPUT
# (read from benchmarks/results/autoencoder_sweep.json: the numbers of the run that wrote it)
sweep = json.loads((repo_root() / "benchmarks" / "results" / "autoencoder_sweep.json").read_text())
print(f"{'variant':<15}{'latent':>9}{'numbers':>9}{'perceptual':>11}{'steps':>7}{'MSE':>9}{'FID':>8}"
      f"   unreconstructed, floor at N={sweep['n']}")
for row in sweep["rows"]:
    print(f"{row['variant']:<15}{row['latent_channels']:>5}×7×7{row['latent_numbers']:>9}{row['perceptual_weight']:>11g}"
          f"{row['steps']:>7,}{row['mse']:>9.4f}{row['fid']:>8.3f}   {row['fid_originals']:.3f}, {row['fid_floor']:.3f}")
plain = [r for r in sweep["rows"] if r["perceptual_weight"] == 0]
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot([r["latent_numbers"] for r in plain], [r["fid"] for r in plain], "o-", label="L1 + KL")
for r in sweep["rows"]:
    if r["perceptual_weight"] > 0:
        ax.plot(r["latent_numbers"], r["fid"], "s", color="C3", label="L1 + KL + perceptual")
ax.axhline(plain[0]["fid_floor"], color="k", linestyle=":", label=f"real-vs-real floor (N={sweep['n']})")
ax.axhline(plain[0]["fid_originals"], color="k", linestyle="--", linewidth=0.8, label="a perfect autoencoder")
ax.set_xlabel("numbers per latent (the image has 784)")
ax.set_ylabel("reconstruction classifier-FID")
ax.set_title(f"rate against distortion, {sweep['minutes']:g} min of training each")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the curve from the left: how much does the FID fall from $c=2$ to $c=4$, and how much more from
# 4 to 8? Where it flattens, more latent numbers buy little quality but cost the diffusion model more.
# The perceptual row had fewer steps in the same minutes (its loss runs the classifier too): compare it
# with the $c = 4$ row above it. The shipped autoencoder's $c$ is printed in the imports cell; §4 prints
# its loss weights, its training time and its own scores.
#
# ## 2. The autoencoder and its KL term
#
# The encoder maps an image $x$ to the mean $\mu(x)$ and log-variance $\log\sigma^2(x)$ of a diagonal
# Gaussian $q(z \mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ over latents $z$ of shape
# $c \times 7 \times 7$; the decoder maps a $z$ back to an image $\hat x$. The encoder is a small
# convolutional network (ResBlocks, two stride-2 convolutions, attention at 7×7), the decoder its mirror
# (`ddpm_teach/autoencoder.py`). To get a $z$ from $q(z \mid x)$ in a way that gradients can flow through,
# the encoder's output is combined with fresh noise, $z = \mu + \sigma \odot \varepsilon$ with
# $\varepsilon \sim \mathcal N(0, I)$ (the **reparameterisation trick**; `DiagonalGaussian.sample`). The loss
# for one image (Rombach et al. §3 and App. G, without their GAN term) is
#
# $$L = \sum_{\text{pixels}} \big(|x - \hat x| + w_p\, d_{\text{perc}}(x, \hat x)\big) + w_{KL}\,\mathrm{KL}\big(q(z \mid x)\,\Vert\,\mathcal N(0, I)\big),
# \qquad \hat x = D(z),\; z = \mu + \sigma \odot \varepsilon.$$
#
# where $d_{\text{perc}}$ is one number per image, added to every pixel's error (so it counts $H \cdot W$
# times, as in LDM's code). The KL term is notebook 08 §4's KL between two Gaussians with the second one
# fixed at $\mathcal N(0, 1)$; per latent number (Kingma & Welling 2014, App. B):
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\Vert\,\mathcal N(0, 1)\big) = \tfrac12\big(\mu^2 + \sigma^2 - 1 - \log\sigma^2\big),$$
#
# summed over the $c \cdot 7 \cdot 7$ numbers. Here is a teaching version, checked against the package's
# `kl_divergence` and against `torch.distributions`:

# %%
ddpm_teach.course.section("2. The autoencoder and its KL term")


def kl_by_hand(mean, logvar):
    """½ Σ (μ² + σ² − 1 − log σ²) over every dimension but the first: one number per image."""
    return 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)


g = generator(1)
mean_example = torch.randn(3, 4, 7, 7, generator=g, dtype=torch.float64)
logvar_example = torch.randn(3, 4, 7, 7, generator=g, dtype=torch.float64)
oracle = torch.distributions.kl_divergence(torch.distributions.Normal(mean_example, (0.5 * logvar_example).exp()),
                                           torch.distributions.Normal(0.0, 1.0)).flatten(1).sum(1)
print("KL by hand      :", [round(v, 4) for v in kl_by_hand(mean_example, logvar_example).tolist()])
print("package         :", [round(v, 4) for v in kl_divergence(mean_example, logvar_example).tolist()])
print("torch.distributions:", [round(v, 4) for v in oracle.tolist()])
print("KL of the prior itself (μ = 0, σ = 1):", kl_by_hand(torch.zeros(1, 4), torch.zeros(1, 4)).item())

# %% [markdown]
# Two choices in that loss deserve a word.
#
# * **The KL weight is tiny** ($w_{KL} = 10^{-6}$, as in LDM). A VAE (variational autoencoder) with a
#   KL weight of 1 makes the latents of all images together look like $\mathcal N(0, I)$, so that new
#   images can be made by decoding noise. That is not the job here (the diffusion model makes the
#   latents), and a large KL weight costs reconstruction quality. At $10^{-6}$ the KL is too weak to hold
#   $\sigma$ near 1 ($\sigma$ shrinks, §3 prints it) or the means near unit spread (their scale is
#   whatever the encoder finds convenient); it only stops them drifting without bound. §5 fixes the spread
#   with one number.
# * **The perceptual term** ($w_p = 1$ in the shipped autoencoder). An L1 or L2 loss alone gives blurry reconstructions: blur is the average
#   of the plausible sharp images, and that average has a low pixel error. LDM adds LPIPS, a distance
#   between the features of a pretrained network. LPIPS weights cannot be downloaded here, so the course
#   uses the features of its own Fashion-MNIST classifier (`ClassifierPerceptualLoss`: the activations
#   after each of its three conv stages, unit-normalised over channels, squared differences). A caveat
#   worth knowing: the same classifier computes the FID of §4, so a loss on its features is partly a
#   loss on the metric; the MSE column of §1's table is the check that does not share its features.
#
# The loss on a batch, by hand, against `autoencoder_loss` (a fresh, untrained autoencoder of the
# shipped shape in float64, so that the printed numbers are the same on every machine):

# %%
torch.manual_seed(0)
fresh = Autoencoder(AutoencoderConfig(**ae_ckpt["model_config"])).double()
x_batch = to_model_range(test_data.images[:4]).double()                        # (4, 1, 28, 28) in [-1, 1]
loss, parts = autoencoder_loss(fresh, x_batch, kl_weight=1e-6, generator=generator(2))
posterior = fresh.encode(x_batch)                                              # DiagonalGaussian, means (4, c, 7, 7)
z = posterior.sample(generator(2))                                             # μ + σ·ε, the same ε as in the loss
x_hat = fresh.decode(z)                                                        # (4, 1, 28, 28)
by_hand = ((x_batch - x_hat).abs().flatten(1).sum(1) + 1e-6 * kl_by_hand(posterior.mean, posterior.logvar)).mean()
print(f"encoder output: mean {tuple(posterior.mean.shape)}, log-variance {tuple(posterior.logvar.shape)}")
print(f"loss by hand {by_hand.item():.4f}, autoencoder_loss {loss.item():.4f}; "
      f"per-pixel L1 {parts['recon'].item():.4f}, KL {parts['kl'].item():.1f} nats per image")

# %% [markdown]
# ## 3. Looking at latents
#
# What does the shipped encoder make of an image? Each latent is $c$ small 7×7 maps. Below, each channel
# is drawn on its own colour scale, the same for every image and centred on 0 (red positive, blue
# negative). Do the maps still look like a coarse version of the garment? A *perceptual* compressor
# keeps the layout of the image: its latent is a small picture, not an abstract code.

# %%
ddpm_teach.course.section("3. Looking at latents")
x_show = to_model_range(test_data.images[:N_SHOW])                            # (N_SHOW, 1, 28, 28)
with torch.no_grad():
    posterior_show = autoencoder.encode(x_show.to(DEVICE))
latents_show = posterior_show.mean.detach().cpu()                             # (N_SHOW, c, 7, 7), unscaled
c, n_cols = latents_show.shape[1], 4                                          # 4 images at every size
limits = latents_show[:n_cols].abs().amax(dim=(0, 2, 3))                      # one symmetric range per channel
fig, axes = plt.subplots(c + 1, n_cols, figsize=(1.5 * n_cols, 1.35 * (c + 1)))
for j in range(n_cols):
    axes[0, j].imshow(x_show[j, 0], cmap="gray", vmin=-1, vmax=1)
    axes[0, j].set_title(CLASSES[int(test_data.labels[j])], fontsize=8)
    for k in range(c):
        axes[k + 1, j].imshow(latents_show[j, k], cmap="RdBu_r", vmin=-limits[k], vmax=limits[k])
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
for k in range(c):
    axes[k + 1, 0].set_ylabel(f"channel {k}", fontsize=8)
axes[0, 0].set_ylabel("image", fontsize=8)
fig.suptitle("test images and the channels of their latents (posterior means, 7×7 each)", fontsize=10)
fig.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
print(f"the encoder's σ: mean {posterior_show.std.mean().item():.4f}, against |μ| mean "
      f"{posterior_show.mean.abs().mean().item():.3f} (the tiny KL weight lets σ shrink; see §2)")

# %% [markdown]
# **Interpolation.** Walk in a straight line from one image to another, once in pixel space and once in
# latent space (then decode). In pixel space the midpoints are two images laid over each other, a
# cross-fade. What does the decoder make of the latent midpoints: an overlay too, or one garment turning
# into the other? Expect something in between here. This latent is *spatial* (a 7×7 picture) and barely
# regularised (the tiny KL), so a mix of two latents is much like a mix of two small pictures, and the
# decoder mostly sharpens it; the latents of a VAE with a large KL weight, or of a semantic encoder,
# interpolate more meaningfully (and reconstruct worse).

# %%
x_a, x_b = to_model_range(test_data.images[[0]]), to_model_range(test_data.images[[1]])
weights = torch.linspace(0, 1, N_SHOW)
pixel_path = torch.cat([(1 - w) * x_a + w * x_b for w in weights])
z_a, z_b = codec.encode(x_a), codec.encode(x_b)                                # scaled latents (§5), (1, c, 7, 7)
latent_path = codec.decode(torch.cat([(1 - w) * z_a + w * z_b for w in weights]).to(DEVICE)).cpu()
fig, (ax_p, ax_l) = plt.subplots(2, 1, figsize=(1.4 * N_SHOW, 3.4))
show_images(pixel_path, nrow=N_SHOW, ax=ax_p, title="in pixel space: (1 − w)·x_a + w·x_b")
show_images(latent_path, nrow=N_SHOW, ax=ax_l, title="in latent space: decode((1 − w)·z_a + w·z_b)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Reconstruction quality
#
# Whatever the latent model samples goes through the decoder, so the autoencoder's reconstructions are,
# in practice, the best quality the latent model can expect (a rough bound: the FID of its samples will
# hardly beat the FID of the reconstructions). First, by eye:

# %%
ddpm_teach.course.section("4. Reconstruction quality")
recon_show = reconstruct(autoencoder, x_show, device=DEVICE)                    # decode(mean), clamped to [-1, 1]
fig, (ax_o, ax_r, ax_d) = plt.subplots(3, 1, figsize=(1.4 * N_SHOW, 4.8))
show_images(x_show, nrow=N_SHOW, ax=ax_o, title="test images")
show_images(recon_show, nrow=N_SHOW, ax=ax_r, title="reconstructions: decode(encode(x))")
show_images((recon_show - x_show).abs() * 2 - 1, nrow=N_SHOW, ax=ax_d, title="|error|, black = 0, white = 1")
fig.tight_layout()
plt.show()

# %% [markdown]
# Then measured: classifier-FID of `N_SCORE` reconstructions (1000 at full size) against the test set,
# with two references at the same $N$: the real-vs-real floor (training images, notebook 05), and the FID
# of the *same* test images unreconstructed, which is lower than the floor because those images are part
# of the test set the FID compares against. A reasonable aim for an autoencoder is a reconstruction FID
# within 2x of the floor.

# %%
# NBVAL_IGNORE_OUTPUT
evaluator = Evaluator.load(device=DEVICE)
g = generator(0)
score_idx = torch.randperm(len(test_data), generator=g)[:N_SCORE]
x_score = to_model_range(test_data.images[score_idx])
with timed(f"reconstructing and scoring {N_SCORE} test images"):
    x_score_hat = reconstruct(autoencoder, x_score, device=DEVICE)
    recon_fid, originals_fid, floor = evaluator.fid(x_score_hat), evaluator.fid(x_score), evaluator.fid_floor(N_SCORE)
print(f"N={N_SCORE}: reconstructions FID {recon_fid:.3f}; the same images unreconstructed {originals_fid:.3f}; "
      f"real-vs-real floor {floor:.3f} → {recon_fid / floor:.2f}x the floor; "
      f"per-pixel MSE {(x_score - x_score_hat).pow(2).mean().item():.4f}")
scores = ae_ckpt["scores"]
print(f"stored with the checkpoint (N={scores['n']}, seed 0): FID {scores['fid']:.3f}, floor {scores['fid_floor']:.3f}, "
      f"MSE {scores['mse']:.4f}; trained {ae_ckpt['steps']:,} steps in {ae_ckpt['train_seconds'] / 60:.1f} min with "
      f"w_KL = {ae_ckpt['train_config']['kl_weight']:g}, perceptual weight {ae_ckpt['train_config']['perceptual_weight']:g}")

# %% [markdown]
# ## 5. The scale factor
#
# The forward process ends at $\mathcal N(0, I)$ and the sampler starts there. If the data has a much
# larger (or smaller) spread than 1, the noise schedule's signal-to-noise ratios (notebook 02) mean
# something else entirely: with latents of standard deviation 5, "$\bar\alpha = 0.5$" would still be
# mostly signal. Rombach et al. (§4.3.2 and App. D.1) rescale the latents by one number $s_z$ so that
# they have unit variance (they estimate it from a batch of training latents; the course uses all
# 60,000 training images):
#
# $$z_0 = s_z \cdot \mu(x), \qquad s_z = 1 / \operatorname{std}(\mu(x)).$$
#
# (LDM and Stable Diffusion train on a *sample* $z \sim q(z \mid x)$ times $s_z$; the course encodes the
# dataset once with the means $\mu(x)$, a harmless simplification when $\sigma$ is as small as §3 printed.)
# For Stable Diffusion's autoencoder $s_z$ is the famous 0.18215 (its latents have a standard deviation
# of about 5.5). The package computes it with `latent_scale_factor` (exercise 3 asks you to write it);
# on a fixed batch:

# %%
ddpm_teach.course.section("5. The scale factor")


fixed = 3.0 * torch.randn(256, 4, 7, 7, generator=generator(5)) + 0.5
s_fixed = latent_scale_factor(fixed)
print(f"a fixed batch with std {fixed.std().item():.4f}: s_z = {s_fixed:.6f}; "
      f"scaled std {(fixed * s_fixed).std().item():.4f}")

# %%
# NBVAL_IGNORE_OUTPUT
train_data = load_dataset("fashion_mnist", train=True)
sample_idx = torch.randperm(len(train_data), generator=generator(6))[:2000]
unscaled = codec.encode(to_model_range(train_data.images[sample_idx])) / codec.scale_factor     # μ(x), (2000, c, 7, 7)
scaled = unscaled * codec.scale_factor
print(f"shipped scale factor s_z = {codec.scale_factor:.4f} (Stable Diffusion 1.x: 0.18215)")
print(f"2000 training latents: std {unscaled.std().item():.3f} before, {scaled.std().item():.3f} after scaling; "
      f"mean after {scaled.mean().item():+.3f}")
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(unscaled.flatten().numpy(), bins=80, alpha=0.6, density=True, label="μ(x), unscaled")
ax.hist(scaled.flatten().numpy(), bins=80, alpha=0.6, density=True, label="s_z·μ(x), what diffusion sees")
grid = torch.linspace(-4, 4, 200)
ax.plot(grid, torch.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi), "k:", label="N(0, 1)")
ax.set_xlabel("latent value")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The scaled latents have unit variance, but they need not look Gaussian: the histogram may be skewed or
# have heavy tails. The scale factor only fixes the spread, which is what the noise schedule cares about.
# One more consequence: the samplers clip $\hat x_0$ to $[-1, 1]$ in pixel space (notebook 05), and that
# would be wrong here, because latents are not confined to $[-1, 1]$. The command line and §7 sample
# latent models with `clip_x0=False`.
#
# ## 6. Training in latent space
#
# Nothing in the training loop changes. `encode_dataset` encodes the images once into a `LatentData`,
# which offers the same interface as the images (`batch`, `channels`, `image_size`, `classes`), so the
# `Trainer` of notebook 04 trains on it unchanged: Algorithm 1 with $x_0$ replaced by $z_0$. The only
# changes are the UNet's input, $c$ channels at 7×7 (the `Trainer` reads them from the data), and
# `TrainConfig(autoencoder=...)`, which names the autoencoder's file; the weights, scale factor and SHA-256
# that the checkpoint embeds come with the `LatentData` (from the codec that encoded it). First a short
# run at this size: `TRAIN_STEPS` steps (400 at full size, 20 at CI size) of the same latent UNet as the
# shipped one.

# %%
ddpm_teach.course.section("6. Training in latent space")
# the shipped model's UNet flags; the Trainer adds image_size, in_channels and num_classes from the data
LATENT_UNET = {k: latent_ckpt["model_config"][k] for k in ("base_channels", "channel_mults", "num_res_blocks",
                                                           "attention_resolutions", "num_heads", "norm_groups", "dropout")}
print("the latent UNet:", LATENT_UNET)

# %%
# NBVAL_IGNORE_OUTPUT
with timed(f"encoding {TRAIN_IMAGES:,} training images once"):
    latent_train = encode_dataset(train_data.subset(range(TRAIN_IMAGES)), codec)
print(latent_train, f"latent std {latent_train.latents.std().item():.3f}")
short_config = TrainConfig(conditional=True, autoencoder=str(AE_PATH), steps=TRAIN_STEPS, batch_size=64, lr=1e-3,
                           warmup_steps=max(1, TRAIN_STEPS // 10), ema_decay=0.99, seed=0, checkpoint_every=0,
                           mixed_precision="bf16" if PRECISION == "bf16" else "no", out_dir=str(WORK_DIR / "short"))
short = Trainer(short_config, LATENT_UNET, data=latent_train, device=DEVICE, overwrite=True)   # re-runnable
with timed(f"{TRAIN_STEPS} latent training steps × batch 64"):
    short.train(progress=False)
print(f"first loss {short.loss_history[0]:.3f}, mean of the last 10: {sum(short.loss_history[-10:]) / 10:.3f}")

# %%
# NBVAL_IGNORE_OUTPUT
# (read from the shipped checkpoint, which may be retrained)
config = latent_ckpt["train_config"]
print(f"fashion_mnist_latent.pt: step {latent_ckpt['step']:,} × batch {config['batch_size']} in a "
      f"{config['max_minutes']:g}-minute budget, lr {config['lr']:g}, EMA {config['ema_decay']:g}, mixed precision "
      f"{config['mixed_precision']!r}, label dropout {config['label_dropout']:g}, autoencoder {config['autoencoder']}")
fig, (ax_s, ax_l) = plt.subplots(1, 2, figsize=(11, 3.4))
plot_loss_curve(short.loss_history, smooth=0.9, ax=ax_s)
ax_s.set_title(f"short run: {len(short.loss_history)} steps")
plot_loss_curve(latent_ckpt["loss_history"], smooth=0.98, ax=ax_l)
ax_l.set_title(f"fashion_mnist_latent.pt: {len(latent_ckpt['loss_history']):,} steps")
fig.tight_layout()
plt.show()

# %% [markdown]
# The shipped model was trained by the command line, the same code:
#
# ```
# python -m ddpm_teach train --preset cpu-fast --conditional \
#     --autoencoder checkpoints/fashion_mnist_autoencoder.pt \
#     --channel-mults 1 --base-channels 64 --num-res-blocks 2 --attention-resolutions 7 --max-minutes 15
# ```
#
# (`checkpoints/README.md` has the exact command, its time and scores.) The checkpoint embeds the
# autoencoder's weights, its scale factor and their SHA-256, so it samples on its own, and a checkpoint
# whose autoencoder is missing or altered is refused with a message rather than decoded into nonsense.
#
# ## 7. Guided samples, decoded
#
# Sampling is notebook 07's loop in latent space, then one decoder call: $z_T \sim \mathcal N(0, I)$ of
# shape $c \times 7 \times 7$, DDIM with classifier-free guidance ($\tilde\varepsilon = \varepsilon_u +
# s(\varepsilon_c - \varepsilon_u)$, $s = 2$), then $x = D(z_0 / s_z)$. One row per class, beside
# notebook 07's pixel-space model. This is *not* an equal-budget comparison (that one is §8's): the pixel
# model had its own training run, the latent model 15 minutes plus the autoencoder's.

# %%
ddpm_teach.course.section("7. Guided samples, decoded")
labels_grid = torch.arange(10).repeat_interleave(N_SHOW)                        # each class N_SHOW times
latent_sampler = DDIMSampler(latent_schedule, steps=SAMPLE_STEPS, clip_x0=False)   # no clipping in latent space
print(f"DDIM, clip_x0 = {latent_sampler.clip_x0}")

# %%
# NBVAL_IGNORE_OUTPUT
with timed(f"{len(labels_grid)} guided latent samples, DDIM-{SAMPLE_STEPS}, decode included"):
    z_0 = sample(latent_model, latent_sampler, len(labels_grid), labels=labels_grid, guidance_scale=2.0,
                 generator=generator(7), device=DEVICE, progress=False, precision=PRECISION)
    latent_images = codec.decode(z_0).cpu()                                       # (80 or 40, 1, 28, 28)
with timed(f"{len(labels_grid)} guided pixel-space samples (notebook 07's model), DDIM-{SAMPLE_STEPS}"):
    pixel_images = sample(pixel_model, DDIMSampler(pixel_schedule, steps=SAMPLE_STEPS), len(labels_grid),
                          labels=labels_grid, guidance_scale=2.0, generator=generator(7), device=DEVICE,
                          progress=False, precision=PRECISION).cpu()
print(f"z_0 {tuple(z_0.shape)} → images {tuple(latent_images.shape)}")

# %%
fig, (ax_l, ax_p) = plt.subplots(1, 2, figsize=(2 * 1.05 * N_SHOW + 1, 11 if N_SHOW > 4 else 6))
show_images(latent_images, nrow=N_SHOW, ax=ax_l, title="latent diffusion, s = 2 (one class per row)")
show_images(pixel_images, nrow=N_SHOW, ax=ax_p, title="pixel-space diffusion (notebook 07), s = 2")
for ax in (ax_l, ax_p):
    ax.set_yticks([(k + 0.5) * ax.get_ylim()[0] / 10 for k in range(10)], CLASSES, fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Look for the usual things (notebook 07): does every row show its class, are the images varied within a
# row, and how do details such as the sandals' straps and the print on the shirts compare with the
# pixel-space model's? Remember §4: whatever the decoder loses, every latent sample loses too.
#
# Guidance works exactly as in pixel space. The same class with $s$ from 0 (unconditional) to 4:

# %%
# NBVAL_IGNORE_OUTPUT
scales = (0.0, 1.0, 2.0, 4.0)
rows = []
for s in scales:
    z = sample(latent_model, latent_sampler, N_SHOW, labels=7, guidance_scale=s, generator=generator(8), device=DEVICE,
               progress=False, precision=PRECISION)
    rows.append(codec.decode(z).cpu())
fig, axes = plt.subplots(len(scales), 1, figsize=(1.4 * N_SHOW, 1.6 * len(scales)))
for ax, s, images in zip(axes, scales, rows):
    show_images(images, nrow=N_SHOW, ax=ax, title=f"class {CLASSES[7]!r}, s = {s:g}")
fig.tight_layout()
plt.show()

# %% [markdown]
# The command line does all of this for any latent checkpoint, with any sampler, and writes pixel images:
#
# ```
# python -m ddpm_teach sample --checkpoint checkpoints/fashion_mnist_latent.pt --labels all --guidance-scale 2 --n 1000 --out s.npz
# python -m ddpm_teach sample --checkpoint checkpoints/fashion_mnist_latent.pt --sampler dpmpp2m --steps 15 --labels all --guidance-scale 2 --n 64 --out grid.png
# python -m ddpm_teach evaluate --samples s.npz
# ```
#
# ## 8. Latent against pixel diffusion, measured
#
# `benchmarks/latent_vs_pixel.py` trains both models for the **same wall-clock budget** (15 minutes each
# on 2 CPU cores, one after the other, each with the CPU fast path), samples 1000 images from each with
# DDIM-50 at $s = 2$ from the same seed, times the sampling (decode included), and scores both. The
# autoencoder's own training time is a separate column, added in the "total". Read from its JSON:

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section("8. Latent against pixel diffusion, measured")
# (read from benchmarks/results/latent_vs_pixel.json: the numbers of the run that wrote it)
bench = json.loads((repo_root() / "benchmarks" / "results" / "latent_vs_pixel.json").read_text())
print("machine:", *bench["machine"], sep="\n  ")
print((repo_root() / "benchmarks" / "results" / "latent_vs_pixel.md").read_text())
print("\n".join(bench["ratios"]))
pixel_row, latent_row = (next(r for r in bench["rows"] if r["model"] == m) for m in ("pixel", "latent"))
ae_row = bench["autoencoder"]
verdicts = [
    ("training speed (images per second)", latent_row["train_img_per_s"] > pixel_row["train_img_per_s"]),
    ("sampling time for 1000 images, decode included", latent_row["sample_s_per_1000"] < pixel_row["sample_s_per_1000"]),
    ("classifier-FID at the same training budget", latent_row["fid"] < pixel_row["fid"]),
]
for what, latent_wins in verdicts:
    print(f"{what}: {'latent' if latent_wins else 'pixel'} has the better number")
# the same two trained models, sampled from another seed: how much does the FID move by chance alone?
seed1 = json.loads((repo_root() / "benchmarks" / "results" / "latent_vs_pixel_seed1.json").read_text())
moves = [abs(r0["fid"] - r1["fid"]) for r0, r1 in zip(bench["rows"], seed1["rows"])]
fid_gap = abs(latent_row["fid"] - pixel_row["fid"])
print(f"FID: latent-pixel gap {fid_gap:.2f}; a second sampling seed moved the two models by {moves[0]:.2f} and "
      f"{moves[1]:.2f} → {'within' if fid_gap <= 3 * max(moves) else 'far outside'} that noise")
# accuracy is a share of N images: its standard error is √(p(1 − p)/N) for each model
n = pixel_row["n"]
se = math.sqrt(sum(r["accuracy"] * (1 - r["accuracy"]) / n for r in (pixel_row, latent_row)))
acc_gap = abs(latent_row["accuracy"] - pixel_row["accuracy"])
print(f"accuracy: gap {100 * acc_gap:.1f} points, standard error of the difference {100 * se:.1f} points → "
      f"{'a tie (under 2 standard errors)' if acc_gap < 2 * se else 'a real difference'}")
print(f"the latent model's FID is {latent_row['fid'] / ae_row['fid']:.1f}x its autoencoder's reconstruction FID "
      f"(about the best it can expect): {latent_row['fid']:.2f} against {ae_row['fid']:.2f}")

# %%
# NBVAL_IGNORE_OUTPUT
from IPython.display import Image, display   # noqa: E402  (the benchmark's own figure)
display(Image(filename=str(repo_root() / "benchmarks" / "results" / "latent_vs_pixel.png")))

# %% [markdown]
# What to take from the table (the first cell of this section prints the verdicts, from the numbers; its
# last lines say whether each quality gap is larger than chance: the FID against how far a second sampling
# seed, `benchmarks/results/latent_vs_pixel_seed1.json`, moved the same models' FIDs, the accuracy against its
# binomial standard error):
#
# * **Speed** is where latent diffusion is designed to win: a UNet on 7×7×$c$ instead of 28×28 should
#   train on more images per second and sample faster, even after paying for the decoder; read the two
#   speed verdicts for how much it wins here. With 784 pixels the room is small; at 512×512×3 with
#   $f = 8$ (48 times fewer numbers) the saving is what lets Stable Diffusion *sample* on one consumer GPU
#   (its training still took a cluster of A100s).
# * **Quality** is bounded by the autoencoder. Compare the latent model's FID with the reconstruction row:
#   where the two are close, the diffusion model has learned the latent distribution and the decoder is
#   the limit; a better autoencoder (longer training, a GAN term as LDM uses) would lift both. Rombach et
#   al. (Figs. 6-7) find that f = 4 to 16 trains faster than pixel space at equal compute on ImageNet;
#   the FID verdict above says whether that holds on 28×28 Fashion-MNIST.
# * **The total cost** includes training the autoencoder once. It is paid once for any number of
#   diffusion models on the same data: Stable Diffusion 1.x and 2.x share one autoencoder (SDXL retrained
#   it, and SD3 has a new one with 16 channels).
#
# ## 9. From here to Stable Diffusion
#
# Every piece of Stable Diffusion has a counterpart in this notebook. The course's pieces, read from the
# shipped checkpoints:

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section("9. From here to Stable Diffusion")
cfg_ae, cfg_unet = autoencoder.config, latent_model.config
ours = {
    "autoencoder": f"KL autoencoder, f = {cfg_ae.factor}, c = {cfg_ae.latent_channels}, {autoencoder.num_parameters() / 1e6:.2f}M params",
    "scale factor": f"{codec.scale_factor:.4f}",
    "latent": f"{cfg_ae.latent_channels}×{cfg_ae.latent_size}×{cfg_ae.latent_size} for a 28×28×1 image",
    "denoiser": f"UNet, {latent_model.num_parameters() / 1e6:.2f}M params, attention at {cfg_unet.attention_resolutions}",
    "conditioning": f"class embedding ({cfg_unet.num_classes} classes + null) added to the time embedding",
    "guidance": "classifier-free, label dropout 0.1, s = 2",
    "schedule / sampler": f"{latent_schedule.T} steps, linear β; DDIM, DPM-Solver++(2M), ...",
}
stable_diffusion = {
    "autoencoder": "KL autoencoder (LDM's, with a GAN loss), f = 8, c = 4, 84M params",
    "scale factor": "0.18215",
    "latent": "4×64×64 for a 512×512×3 image",
    "denoiser": "UNet, 860M params, attention at 3 of 4 levels",
    "conditioning": "CLIP ViT-L/14 text encoder; cross-attention from every attention block to its 77 token embeddings",
    "guidance": "classifier-free, caption dropout 0.1, s = 7.5 by default",
    "schedule / sampler": "1000 steps, 'scaled linear' β; PNDM, DDIM, DPM-Solver++, ...",
}
for key in ours:
    print(f"{key:<19} ours: {ours[key]}\n{'':<19} SD 1.x: {stable_diffusion[key]}")

# %% [markdown]
# The one structural change is **conditioning**. Our class label is one embedding vector, added once to
# the time embedding, which then feeds every ResBlock (notebook 07). A caption is a *sequence* of token embeddings from a
# text encoder, so Stable Diffusion lets every position of the feature map attend to them: a
# **cross-attention** layer after each self-attention, with queries from the image features and keys and
# values from the text (Rombach et al. §3.3, eq. 3). Replace `label_emb` with a text encoder and add
# cross-attention to `AttentionBlock`, and this notebook's pipeline is Stable Diffusion's, at toy scale.
# Stable Diffusion 3 keeps the latent idea and changes the rest: an autoencoder with 16 channels, a
# transformer in place of the UNet, and the flow-matching objective of notebook 11.
#
# ## 10. Exercises
#
# **Exercise 1.** One latent number has posterior mean $\mu = 0.6$ and standard deviation $\sigma = 0.5$.
# What is its KL divergence to $\mathcal N(0, 1)$, in nats (natural logarithms)? Compute it from §2's
# formula, to at least 3 decimals, and check with `ddpm_teach.exercises.nb10.check_kl(kl)`.
#
# **Exercise 2.** An autoencoder for 64×64 RGB images has `channel_mults=(1, 2, 2, 4)` (four levels) and
# $c = 16$ latent channels (as many as Stable Diffusion 3's autoencoder has). How many numbers does one
# latent hold, and how many times fewer than the image? Check with
# `ddpm_teach.exercises.nb10.check_latent_size(numbers, ratio)`.
#
# **Exercise 3.** Write a function `my_scale_factor(latents)` that returns the number $s_z$ which, multiplied
# into a tensor of latents, gives them unit variance (without calling `latent_scale_factor`). Check it with
# `ddpm_teach.exercises.nb10.check_scale_factor(my_scale_factor)`.
#
# Try them in the next cell; a worked solution to each is in **Solutions** at the end of the notebook
# (hidden; click to show).

# %%
ddpm_teach.course.section("10. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb10.check_kl(...)
# ddpm_teach.exercises.nb10.check_latent_size(..., ...)
# ddpm_teach.exercises.nb10.check_scale_factor(...)

# %% [markdown]
# ## Summary
#
# * **Why latents.** A diffusion model pays for every input number at every step. An autoencoder trained
#   once removes the imperceptible detail (perceptual compression), and the diffusion model works on the
#   rest (semantic compression): here 28×28×1 → 7×7×$c$ with $f = 4$.
# * **The autoencoder** outputs a diagonal Gaussian $q(z \mid x)$; its loss is a reconstruction term
#   (L1, plus an optional perceptual distance, here from the course's classifier) and a *small* KL to
#   $\mathcal N(0, I)$, whose closed form $\tfrac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$ you checked
#   against `torch.distributions`.
# * **Latents** of this perceptual autoencoder are small pictures that keep the layout of the image;
#   interpolating between two of them is close to a sharpened cross-fade.
# * **The bound.** The autoencoder's reconstruction FID (with its floor) is about the best the latent model
#   can expect.
# * **The scale factor** $s_z = 1/\operatorname{std}$ gives the latents unit variance, so that the noise
#   schedule means what it says (Stable Diffusion's 0.18215); $\hat x_0$ is not clipped in latent space.
# * **Training and sampling** are unchanged: `encode_dataset` + `Trainer`, `sample` + `codec.decode`;
#   `train --autoencoder` and `sample` do it from the command line, with every sampler and guidance.
# * **Measured** (§8): how the two compare in speed and in quality at an equal budget, with $N$ and the floor.
# * **Stable Diffusion** is this pipeline with f = 8, a text encoder and cross-attention in place of the
#   class embedding.
#
# **Further reading.** Rombach et al. 2022 (LDM; §3 and App. G for the autoencoder, §4.1 for the choice of
# $f$, Figs. 6-7 for training progress and sampling speed against $f$); Esser et al. 2021 (VQGAN, the perceptual + GAN autoencoder LDM builds
# on); Podell et al. 2023 (SDXL, a retrained VAE); Esser et al. 2024 (SD3: 16-channel latents and flow
# matching); Peebles & Xie 2023 (DiT, a transformer on latents). The [Glossary](glossary.md) collects the notation.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of §10. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# ½(μ² + σ² − 1 − log σ²) with σ² = 0.25: the mean costs μ²/2, the narrow σ costs the rest.
mu_1, sigma_1 = 0.6, 0.5
kl_1 = 0.5 * (mu_1 ** 2 + sigma_1 ** 2 - 1 - math.log(sigma_1 ** 2))
assert math.isclose(kl_1, float(kl_divergence(torch.tensor([[mu_1]], dtype=torch.float64),
                                              torch.tensor([[math.log(sigma_1 ** 2)]], dtype=torch.float64))),
                    rel_tol=1e-12)
ddpm_teach.exercises.nb10.check_kl(kl_1)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# Four levels, three stride-2 steps between them: f = 2³ = 8, so 64×64 → 8×8, with 16 channels.
f_2 = 2 ** (4 - 1)
numbers_2 = 16 * (64 // f_2) ** 2                     # 1024
ratio_2 = 3 * 64 * 64 / numbers_2                     # 12288 / 1024 = 12
assert AutoencoderConfig(image_size=64, in_channels=3, latent_channels=16, channel_mults=(1, 2, 2, 4),
                         base_channels=8, norm_groups=4).latent_shape == (16, 8, 8)
ddpm_teach.exercises.nb10.check_latent_size(numbers_2, ratio_2)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
# Multiplying by k multiplies the standard deviation by k; k = 1/std makes it 1.
def my_scale_factor(latents):
    return 1.0 / latents.double().std().item()


ddpm_teach.exercises.nb10.check_scale_factor(my_scale_factor)

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
# ← [09 · Fast samplers](09_fast_samplers.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [11 · Flow matching →](11_flow_matching.ipynb)
