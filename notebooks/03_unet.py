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
# # 03 · The UNet: the network that predicts the noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/03_unet.ipynb)
#
# ← [02 · Noise schedules](02_noise_schedules.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [04 · Training →](04_training.ipynb)
#
# Notebooks 01 and 02 built the forward process $q(x_t \mid x_0)$ and its noise schedules. Everything
# a diffusion model *learns* sits in one network, $\varepsilon_\theta(x_t, t)$, which looks at a noisy
# image and the timestep and predicts the noise that was added. This notebook takes that network,
# `ddpm_teach.unet.UNet`, apart: no training yet (that is notebook 04), only the architecture, its
# shapes and its size.
#
# **Learning goals.** After this notebook you can
# 1. say why the denoiser is a UNet: its output has the shape of its input;
# 2. follow the contracting path, the bottleneck, the expanding path and the skip connections, and
#    predict the shape of every intermediate tensor;
# 3. write the sinusoidal time embedding (Transformer §3.5) and say how it reaches every ResBlock;
# 4. explain why the ResBlocks use GroupNorm rather than BatchNorm;
# 5. explain why self-attention is used only at low resolution, from its cost $\propto (HW)^2$;
# 6. count the parameters of a UNet, by formula and by code, and say where they live;
# 7. read off how class conditioning (with a *null* label) and a learned variance change the model,
#    and why the model knows nothing about noise schedules;
# 8. switch on BigGAN resampling and ConvNeXt blocks, trace what each changes, and read a measured
#    comparison of the three designs at an equal parameter count and an equal training time.
#
# **Runtime** (whole notebook, full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-11-22, before §10 was added; not measured since): 12 s
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-07, with §10): 15 s (§10: about 5 s of it)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 10-11 s (AMD, 2026-12-07, with §10) · GPU: not measured
#
# Slower on a CPU with fewer cores or on a busy machine; the last cell prints this run's time per section.
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest) only changes how many times
# the timing cells repeat a forward pass. Every shape and parameter count below is the same at both
# sizes and is checked by `pytest --nbval`. §10's table of trained variants is read from
# `benchmarks/results/blocks.json`, which `python benchmarks/blocks.py` wrote (about an hour on 2 cores).

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

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports")        # times each section of this notebook; the last cell prints the times
import math
import time
from dataclasses import fields

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import ddpm_teach
import ddpm_teach.exercises.nb03
from ddpm_teach.course import by_size, repo_root, timed
from ddpm_teach.plotting import draw_block, draw_unet
from ddpm_teach.unet import (AttentionBlock, ConvNeXtBlock, ResBlock, UNet, UNetConfig, block_trace, timestep_embedding,
                             trace_shapes)

SIZE = ddpm_teach.course.notebook_size()
TIMING_REPEATS = by_size(full=3, ci=1)   # forward passes averaged in the timing cells
TIMING_BATCH = 64                         # batch size of the timed forward passes
_ = torch.manual_seed(0)  # (manual_seed returns the generator; "_ =" keeps it out of the output)

# %% [markdown]
# Two configurations appear throughout. `UNetConfig()` is the package default for 28×28 Fashion-MNIST;
# `SMALL` is the course's CPU configuration, the one the shipped model of notebook 04 was trained with, in
# 15 minutes on a 2-core CPU.
# A config is a dataclass, and `image_size` is the only place the resolution lives.

# %%
DEFAULT = UNetConfig()
SMALL = UNetConfig(base_channels=32, num_res_blocks=1, channel_mults=(1, 2, 2), attention_resolutions=(7,))
for name, cfg in [("DEFAULT", DEFAULT), ("SMALL", SMALL)]:
    print(f"{name:8s}", {k: v for k, v in cfg.to_dict().items()
                         if k in ("image_size", "base_channels", "channel_mults", "num_res_blocks", "attention_resolutions")})
    print(f"{'':8s} feature-map sizes per level: {cfg.resolutions}")

# %% [markdown]
# ## 1. Why a UNet: the output has the shape of the input
#
# DDPM trains $\varepsilon_\theta$ with the simplified objective (Ho et al. 2020, eq. 14)
#
# $$L_\text{simple}(\theta) = \mathbb{E}_{t, x_0, \varepsilon}\Big[\big\lVert \varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\; t\big)\big\rVert^2\Big],$$
#
# so the network must return one number per pixel and channel: **a tensor with exactly the shape of
# $x_t$**. It is an image-to-image map, which is what the UNet of Ronneberger et al. (2015) was made
# for. A UNet first *contracts* the image (lower resolution, more channels) so that each feature sees a
# large part of the picture, and then *expands* it back to full resolution; *skip connections* carry the
# fine detail of each resolution straight across, so it does not have to squeeze through the
# bottleneck. DDPM §4 uses "a U-Net backbone similar to an unmasked PixelCNN++ with group normalization
# throughout", the timestep given by "the Transformer sinusoidal position embedding", and self-attention
# at one low resolution. `ddpm_teach.unet` follows it (and improved-diffusion's `unet.py`).
#
# The contract: `model(x_t, t)` returns $\hat\varepsilon$ with the shape of `x_t`.

# %%
ddpm_teach.course.section("1. Why a UNet")
model = UNet(SMALL).eval()
x_t = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # [B, C, H, W]
t = torch.tensor([0, 10, 500, 999])                                         # one 0-based timestep per image
eps_hat = model(x_t, t)
print("x_t  :", tuple(x_t.shape))
print("ε̂    :", tuple(eps_hat.shape))
print("ε̂ is all zeros at initialisation:", bool((eps_hat == 0).all()))

# %% [markdown]
# The untrained model predicts exactly $\hat\varepsilon = 0$: its last convolution `conv_out` starts
# at zero (as in improved-diffusion), so training starts from "predict no noise", the mean of $\varepsilon$,
# and the first loss is $\mathbb{E}\lVert\varepsilon\rVert^2 / (CHW) = 1$ per pixel. Likewise,
# every ResBlock's second convolution starts at zero (each block starts as the identity, §4 below).
#
# To *see* anything depend on $t$ or on labels in this notebook, we give those zero-initialised weights
# small random values. That is only a stand-in for training.

# %%
def wake_up(model: nn.Module, std: float = 0.05, seed: int = 0) -> nn.Module:
    """Give the zero-initialised weights (conv_out, each ResBlock's conv2, attention's proj) small
    random values, so that an untrained model is a non-trivial function of its inputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if torch.count_nonzero(param) == 0:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    return model


awake = wake_up(UNet(SMALL)).eval()
with torch.no_grad():
    out = awake(x_t, t)
print("shape:", tuple(out.shape), "| std of ε̂ per image:", [round(v, 3) for v in out.std(dim=(1, 2, 3)).tolist()])

# %% [markdown]
# ## 2. The picture: contracting path, bottleneck, expanding path, skips
#
# The diagram below is drawn from the model itself (the small configuration) by
# `ddpm_teach.plotting.draw_unet`, which reads every box off the model's modules. Read it as a U:
#
# - **contracting path** (left, top to bottom): `conv_in` lifts the 1 input channel to
#   `base_channels`; each level has `num_res_blocks` ResBlocks at width `base_channels × mult`; a
#   stride-2 convolution (`downsample`) halves the side between levels, 28 → 14 → 7.
# - **bottleneck** (bottom): ResBlock, self-attention, ResBlock, at 7×7.
# - **expanding path** (right, bottom to top): nearest-neighbour ×2 upsampling plus a 3×3 convolution
#   (`upsample`) doubles the side between levels; each level has `num_res_blocks + 1` ResBlocks.
# - **skip connections** (dashed): every output of the contracting path (`conv_in`, every ResBlock,
#   every downsample) is kept, and is concatenated onto the input of one ResBlock of the expanding path
#   at the same resolution, last in first out. That is why the expanding path has one block more
#   per level: it has one skip more to use.
# - the output head: GroupNorm, SiLU and `conv_out` map back to the input's channel count.
#
# Orange blocks are followed by self-attention; the green labels on the right mark the upsampling.

# %%
ddpm_teach.course.section("2. The picture")
draw_unet(UNet(SMALL))
plt.show()

# %% [markdown]
# Labels read `in→out` channels, and on the right `h + skip → out`: the block's input is the running
# feature map concatenated with the skip. The default configuration has the same shape with two
# ResBlocks per level on the way down and three on the way up: `draw_unet(DEFAULT)` draws it, and
# `draw_unet` takes any `UNetConfig` or `UNet`.

# %% [markdown]
# ## 3. The sinusoidal time embedding
#
# One network serves all $T$ timesteps: its parameters are shared across time, and $t$ is an input.
# A raw integer in $[0, 1000)$ is a poor input for a network, so DDPM encodes it the way the Transformer
# encodes a token's position (Vaswani et al. 2017, §3.5):
#
# $$PE(t, 2i) = \sin\!\big(t / 10000^{2i/d}\big), \qquad PE(t, 2i+1) = \cos\!\big(t / 10000^{2i/d}\big), \qquad i = 0, \dots, d/2 - 1.$$
#
# The frequencies $\omega_i = 10000^{-2i/d}$ run geometrically from 1 (period $2\pi \approx 6$ steps)
# down to about $10^{-4}$ (a period far longer than $T$): the fast ones tell neighbouring steps apart,
# the slow ones say roughly *where* in the process we are. `ddpm_teach` (like improved-diffusion) puts
# all the cosines first and then all the sines, $[\cos(t\omega_0), \dots, \cos(t\omega_{d/2-1}),
# \sin(t\omega_0), \dots]$; the Transformer interleaves them, and DDPM's TensorFlow code puts the sines
# first. The order does not matter: the next layer is a `Linear`, which does not care how its inputs
# are ordered.
#
# A teaching version, checked against the package:

# %%
ddpm_teach.course.section("3. Time embedding")


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """t [B] (any real timesteps) → [B, dim] = [cos(t·ω_i), sin(t·ω_i)], ω_i = max_period^(−i/half)."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32)
    omega = torch.exp(-math.log(max_period) * i / half)      # ω_i = max_period^(−2i/dim), from 1 down to ~1/max_period
    angles = t.float()[:, None] * omega[None, :]             # (B, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, dim)


ts = torch.arange(1000)
torch.testing.assert_close(sinusoidal_embedding(ts, 64), timestep_embedding(ts, 64))
torch.testing.assert_close(sinusoidal_embedding(ts, 128), timestep_embedding(ts, 128))
print("teaching version == ddpm_teach.unet.timestep_embedding  ✓")
print("shape for 1000 timesteps, dim 64:", tuple(timestep_embedding(ts, 64).shape))

# %% [markdown]
# From here on, the package's `timestep_embedding`. Left: the embedding of every $t$ (rows) across its
# 64 dimensions (columns), as the default model computes it. The first columns of each half oscillate
# fast in $t$ (they alias into noise at this resolution), the last ones barely move. Right: the cosine
# similarity between the embeddings of two timesteps. Nearby timesteps look alike and distant ones do
# not, so the network can both tell $t=10$ from $t=11$ and treat them almost the same.

# %%
emb = timestep_embedding(ts, DEFAULT.base_channels)                     # (1000, 64)
unit = emb / emb.norm(dim=1, keepdim=True)
similarity = unit @ unit.T                                              # (1000, 1000)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
im = axes[0].imshow(emb.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
axes[0].axvline(DEFAULT.base_channels / 2 - 0.5, color="black", linewidth=0.8)
axes[0].set_xlabel("embedding dimension (cos | sin)")
axes[0].set_ylabel("timestep t")
axes[0].set_title("timestep_embedding(t, 64)")
fig.colorbar(im, ax=axes[0], fraction=0.046)
im = axes[1].imshow(similarity.numpy(), cmap="viridis", interpolation="nearest")
axes[1].set_xlabel("timestep t'")
axes[1].set_ylabel("timestep t")
axes[1].set_title("cosine similarity of embeddings")
fig.colorbar(im, ax=axes[1], fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# Inside the model the embedding goes through a small MLP, `time_mlp`: Linear(base → 4·base), SiLU,
# Linear(4·base → 4·base). The result, a vector of `4·base_channels` numbers per image, is handed to
# **every** ResBlock. A class embedding, when there is one, is added to it (§8).

# %%
print(model.time_mlp)
with torch.no_grad():
    e = model.time_mlp(timestep_embedding(t, SMALL.base_channels))
print("timesteps", tuple(t.shape), "→ sinusoid", (len(t), SMALL.base_channels), "→ time_mlp", tuple(e.shape))

# %% [markdown]
# ## 4. ResBlocks with GroupNorm, and where the time enters
#
# Each ResBlock (`ddpm_teach.unet.ResBlock`) computes
#
# $$h = \mathrm{conv}_1\big(\mathrm{SiLU}(\mathrm{GN}(x))\big) + W_e\,\mathrm{SiLU}(e), \qquad
# \text{out} = \mathrm{skip}(x) + \mathrm{conv}_2\big(\mathrm{dropout}(\mathrm{SiLU}(\mathrm{GN}(h)))\big),$$
#
# where $e$ is the time (+ class) embedding and $W_e$ (`emb_proj`) maps it to one number per output
# channel. That vector is **broadcast over all positions**: the timestep shifts each channel's
# activations up or down everywhere in the image, a per-channel bias that depends on $t$.
# `skip` is the identity, or a 1×1 convolution when the channel count changes.

# %%
ddpm_teach.course.section("4. ResBlocks and GroupNorm")
block = ResBlock(in_ch=32, out_ch=64, emb_dim=128, dropout=0.1, groups=8)
print(block)
x = torch.randn(2, 32, 14, 14, generator=torch.Generator().manual_seed(1))
e = torch.randn(2, 128, generator=torch.Generator().manual_seed(2))
print("emb_proj(SiLU(e))          :", tuple(block.emb_proj(F.silu(e)).shape), "→ [:, :, None, None] →",
      tuple(block.emb_proj(F.silu(e))[:, :, None, None].shape), "broadcast over H×W")
print("ResBlock(x [2, 32, 14, 14]):", tuple(block(x, e).shape))

# %% [markdown]
# `conv2` starts at zero, so a fresh ResBlock is exactly its skip path. A deep stack of identities is
# easy to train; each block then learns a small correction.

# %%
same = ResBlock(64, 64, emb_dim=128, dropout=0.0, groups=8)
x64 = torch.randn(2, 64, 7, 7, generator=torch.Generator().manual_seed(3))
print("fresh ResBlock(64→64) is the identity:", torch.equal(same(x64, e), x64))

# %% [markdown]
# **Why GroupNorm, not BatchNorm?** BatchNorm normalises each channel with the mean and variance *over
# the batch*. Diffusion models are trained with small per-device batches (a few images per GPU for large
# images), and every batch mixes timesteps from almost clean to pure noise, whose statistics are wildly
# different; at sampling time the batch may be a single image, and BatchNorm then has to fall back on
# running averages that do not match. GroupNorm (Wu & He 2018) normalises each image on its own, over
# groups of channels (`norm_groups = 8` here) and all positions, so the output for one image never
# depends on the rest of the batch. The check below puts the same image in two different batches.

# %%
gen = torch.Generator().manual_seed(4)
image = torch.randn(1, 32, 14, 14, generator=gen)
batch_a = torch.cat([image, torch.randn(3, 32, 14, 14, generator=gen)])
batch_b = torch.cat([image, 5 * torch.randn(3, 32, 14, 14, generator=gen) + 2])   # different companions
for norm in [nn.BatchNorm2d(32), nn.GroupNorm(8, 32)]:
    diff = (norm(batch_a)[0] - norm(batch_b)[0]).abs().max().item()
    print(f"{type(norm).__name__:12s}: max change of image 0's output when its batch changes = {diff:.2f}")

# %% [markdown]
# ## 5. Self-attention, only at low resolution
#
# Convolutions see a small neighbourhood; self-attention lets every position look at every other one,
# which helps with global structure (a shirt has two sleeves). With $N = HW$ positions, queries $Q$,
# keys $K$ and values $V$ of $N$ rows each (Vaswani et al. 2017, eq. 1):
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_k}}\Big)V.$$
#
# `AttentionBlock` normalises, computes $Q, K, V$ with one 1×1 convolution, splits the channels into
# `num_heads` heads of $d_k = C/\text{heads}$, calls PyTorch's `F.scaled_dot_product_attention`
# (SDPA: a fused kernel, flash attention where the hardware has it) and adds the result back through a
# zero-initialised 1×1 projection. A teaching version, checked against the block:

# %%
ddpm_teach.course.section("5. Self-attention")


def attention_by_hand(attn: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    B, C, H, W = x.shape
    nh, dk = attn.num_heads, C // attn.num_heads
    q, k, v = attn.qkv(attn.norm(x)).reshape(B, 3, nh, dk, H * W).unbind(1)    # each (B, nh, dk, N)
    weights = torch.softmax(q.transpose(2, 3) @ k / math.sqrt(dk), dim=-1)   # (B, nh, N, N): softmax(QKᵀ/√d_k)
    h = (weights @ v.transpose(2, 3))                                        # (B, nh, N, dk)
    h = h.transpose(2, 3).reshape(B, C, H, W)                                # (B, C, H, W)
    return x + attn.proj(h)


attn = wake_up(AttentionBlock(channels=64, num_heads=4, groups=8))
x7 = torch.randn(2, 64, 7, 7, generator=torch.Generator().manual_seed(5))
with torch.no_grad():
    torch.testing.assert_close(attention_by_hand(attn, x7), attn(x7))
print("teaching attention == AttentionBlock (SDPA)  ✓   attention weights per image:", (4, 49, 49))

# %% [markdown]
# The weight matrix has $N^2 = (HW)^2$ entries per head, and computing $QK^\top$ and the weighted sum
# costs about $2 \cdot 2 N^2 C$ floating-point operations, against $2 \cdot 9 C^2 N$ for a 3×3
# convolution. Halving the side divides attention's cost by 16 but a convolution's only by 4. The table
# puts attention at each level of the default model (C = 64, 128, 128), for one image; the last column is
# the memory of the weight matrices for a batch of 64 with 4 heads in float32, if they are stored (as
# the backward pass of plain attention does).

# %%
print(f"{'level':>5} {'H×W':>6} {'N=HW':>6} {'C':>4} {'N² per head':>12} {'attn MFLOP':>11} {'3×3 conv MFLOP':>15} "
      f"{'attn/conv':>9} {'weights B=64':>13}")
for level, (res, mult) in enumerate(zip(DEFAULT.resolutions, DEFAULT.channel_mults)):
    N, C = res * res, DEFAULT.base_channels * mult
    attn_flops = 2 * 2 * N * N * C              # QKᵀ and weights·V, 2 FLOPs per multiply-add
    conv_flops = 2 * 9 * C * C * N              # one 3×3 conv, C → C
    weights_mb = N * N * DEFAULT.num_heads * 64 * 4 / 1e6
    print(f"{level:>5} {f'{res}×{res}':>6} {N:>6} {C:>4} {N * N:>12,} {attn_flops / 1e6:>11.1f} {conv_flops / 1e6:>15.1f} "
          f"{attn_flops / conv_flops:>9.2f} {f'{weights_mb:,.1f} MB':>13}")

# %% [markdown]
# At 28×28 one attention layer costs almost three 3×3 convolutions and needs 0.6 GB of attention
# weights for a batch of 64; at 7×7 it is a rounding error. So the model attends only where it is
# cheap, and the bottleneck always has attention. (DDPM used 16×16 for 32×32 CIFAR-10 images.) A
# measured comparison on this machine, batch 16:

# %%
# NBVAL_IGNORE_OUTPUT
attn_64 = AttentionBlock(64, num_heads=4, groups=8).eval()
for res in (28, 14, 7):
    xr = torch.randn(16, 64, res, res)
    with torch.no_grad():
        attn_64(xr)                                  # warm-up
        start = time.perf_counter()
        for _ in range(TIMING_REPEATS):
            attn_64(xr)
    print(f"AttentionBlock(64) on [16, 64, {res}, {res}]: {(time.perf_counter() - start) / TIMING_REPEATS * 1000:8.1f} ms per call")

# %% [markdown]
# ## 6. A shape trace through the network
#
# `trace_shapes(model, x, t)` runs the model once with forward hooks and returns (module name, output
# shape) for `conv_in`, every ResBlock, attention, down/upsample and `conv_out`, in the order they ran.
# The table adds what went *in*: on the expanding path a ResBlock's input is the running feature map
# concatenated with a skip (`h+skip`).

# %%
ddpm_teach.course.section("6. Shape trace")


def trace_table(model: UNet, batch: int = 2) -> list[dict]:
    x = torch.zeros(batch, model.config.in_channels, model.config.image_size, model.config.image_size)
    rows, prev_ch = [], model.config.in_channels
    for name, shape in trace_shapes(model, x, torch.zeros(batch, dtype=torch.long)):
        module = model.get_submodule(name)
        if isinstance(module, (ResBlock, ConvNeXtBlock)):          # ConvNeXt: §10
            kind, in_ch = "ResBlock", module.in_channels
        elif isinstance(module, AttentionBlock):
            kind, in_ch = "attention", module.norm.num_channels
        elif isinstance(module, nn.Conv2d):
            kind, in_ch = "conv", module.in_channels
        else:
            kind, in_ch = type(module).__name__.lower(), module.conv.in_channels
        inputs = f"{prev_ch}+{in_ch - prev_ch}" if in_ch != prev_ch else f"{in_ch}"
        rows.append(dict(name=name, kind=kind, inputs=inputs, shape=shape))
        prev_ch = shape[1]
    return rows


small_trace = trace_table(UNet(SMALL))
print(f"{'#':>2}  {'module':24s} {'kind':10s} {'in channels':>11}   output [B, C, H, W]")
for i, row in enumerate(small_trace):
    print(f"{i:>2}  {row['name']:24s} {row['kind']:10s} {row['inputs']:>11}   {list(row['shape'])}")

# %% [markdown]
# Read it top to bottom: the side goes 28 → 14 → 7 and back, the channels 1 → 32 → 64 and back to 1,
# and the output shape equals the input shape. The downsample and upsample layers keep the channel
# count; the channels change in the first ResBlock of a level. The same trace, drawn, for both
# configurations:

# %%
default_trace = trace_table(UNet(DEFAULT))
KIND_BAR_COLOURS = {"conv": "#969696", "ResBlock": "#6baed6", "attention": "#fd8d3c", "downsample": "#74c476",
                    "upsample": "#31a354"}
fig, axes = plt.subplots(2, 2, figsize=(12, 5.5), sharex="col", gridspec_kw=dict(height_ratios=[1, 1.3]))
for col, (name, rows) in enumerate([("small", small_trace), ("default", default_trace)]):
    steps = range(len(rows))
    sides = [r["shape"][-1] for r in rows]
    channels = [r["shape"][1] for r in rows]
    axes[0, col].step(steps, sides, where="mid", color="black")
    axes[0, col].scatter(steps, sides, c=[KIND_BAR_COLOURS[r["kind"]] for r in rows], zorder=3, edgecolor="black", s=30)
    axes[0, col].set_yticks(sorted(set(sides)))
    axes[0, col].set_ylabel("side H = W")
    axes[0, col].set_title(f"{name} config: {sum(p.numel() for p in UNet(SMALL if name == 'small' else DEFAULT).parameters()):,} parameters")
    axes[0, col].grid(alpha=0.3)
    axes[1, col].bar(steps, channels, color=[KIND_BAR_COLOURS[r["kind"]] for r in rows], edgecolor="black", linewidth=0.5)
    axes[1, col].set_ylabel("channels C")
    axes[1, col].set_xlabel("module, in the order it runs")
    axes[1, col].set_xticks(list(steps))
    axes[1, col].set_xticklabels([r["name"].replace("down_levels", "down").replace("up_levels", "up")
                                  .replace("blocks.", "res").replace("attns.", "attn").replace("samples.", "sample")
                                  for r in rows], rotation=90, fontsize=7)
handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in KIND_BAR_COLOURS.values()]
fig.legend(handles, KIND_BAR_COLOURS.keys(), loc="upper center", ncol=5, fontsize=8, bbox_to_anchor=(0.5, 1.0))
fig.tight_layout(rect=(0, 0, 1, 0.95))
plt.show()

# %% [markdown]
# The image size must survive every halving: with `len(channel_mults)` levels it must be divisible by
# $2^{\text{levels}-1}$. 28 = 4·7 allows three levels, not four, and the config says so:

# %%
try:
    UNetConfig(image_size=28, channel_mults=(1, 2, 2, 2))
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 7. Parameter count, and where the parameters live
#
# A 3×3 convolution from $C_\text{in}$ to $C_\text{out}$ channels has $9\,C_\text{in}C_\text{out} +
# C_\text{out}$ parameters, a Linear layer $d_\text{in}d_\text{out} + d_\text{out}$, a 1×1 convolution
# $C_\text{in}C_\text{out} + C_\text{out}$, a GroupNorm $2C$ (a scale and a shift per channel). Almost
# everything is convolution weights, so the count grows about **quadratically** with `base_channels`.
# By code it is one line, `model.num_parameters()`.

# %%
ddpm_teach.course.section("7. Parameter count")
PARTS = {
    "time embedding (time_mlp)": ("time_mlp",),
    "class embedding (label_emb)": ("label_emb",),
    "stem: conv_in, norm_out, conv_out": ("conv_in", "norm_out", "conv_out"),
    "contracting path (down)": ("down_levels", "downsamples"),
    "bottleneck (mid)": ("mid_block1", "mid_attn", "mid_block2"),
    "expanding path (up)": ("up_levels", "upsamples"),
}


def parameter_breakdown(model: UNet) -> dict[str, int]:
    counts = dict.fromkeys(PARTS, 0)
    for name, param in model.named_parameters():
        top = name.split(".")[0]
        part = next(part for part, prefixes in PARTS.items() if top in prefixes)
        counts[part] += param.numel()
    assert sum(counts.values()) == model.num_parameters()
    return counts


models = {"default": UNet(DEFAULT), "small": UNet(SMALL)}
breakdowns = {name: parameter_breakdown(m) for name, m in models.items()}
print(f"{'part':36s} {'default':>11} {'':>6} {'small':>11} {'':>6}")
for part in PARTS:
    cells = [f"{breakdowns[n][part]:>11,} {breakdowns[n][part] / models[n].num_parameters():>6.1%}" for n in models]
    print(f"{part:36s} {'  '.join(cells)}")
print(f"{'total':36s} {models['default'].num_parameters():>11,} {'':>6}  {models['small'].num_parameters():>11,}")

# %% [markdown]
# About 60% of the weights are in the expanding path: it has one ResBlock more per level, and its
# blocks read the concatenation of the feature map and a skip, so their first convolution is wider.
# The default model has 6.5 M parameters, the small one 1.1 M; for comparison DDPM's CIFAR-10 model had
# 35.7 M. How the count grows with `base_channels`:

# %%
print(f"{'base_channels':>13} {'parameters':>12} {'÷ default':>10} {'(base/64)²':>11}")
for base in (16, 32, 64, 128):
    n = UNet(DEFAULT, base_channels=base).num_parameters()
    print(f"{base:>13} {n:>12,} {n / models['default'].num_parameters():>10.3f} {(base / 64) ** 2:>11.3f}")

# %%
from matplotlib.colors import to_rgb

fig, ax = plt.subplots(figsize=(9, 2.6))
colours = ["#fdd0a2", "#fd8d3c", "#d9d9d9", "#9ecae1", "#bcbddc", "#3182bd"]
for row, name in enumerate(models):
    left = 0.0
    for colour, (part, count) in zip(colours, breakdowns[name].items()):
        if count == 0:                      # no class embedding: these models are unconditional
            continue
        share = count / models[name].num_parameters()
        ax.barh(row, share, left=left, color=colour, edgecolor="black", linewidth=0.5, label=part if row == 0 else None)
        if share > 0.05:
            luminance = sum(w * c for w, c in zip((0.299, 0.587, 0.114), to_rgb(colour)))
            ax.text(left + share / 2, row, f"{share:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if luminance < 0.5 else "black")      # white on dark bars
        left += share
ax.set_yticks(range(len(models)))
ax.set_yticklabels([f"{n}\n{m.num_parameters() / 1e6:.2f} M" for n, m in models.items()])
ax.set_xlabel("share of the parameters")
ax.set_xlim(0, 1)
ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 8. Class conditioning, learned variance, and what the model does *not* know
#
# **Class conditioning** (notebook 07). With `num_classes=K` the model has a class embedding table with
# **K + 1** rows; the extra row, label `K`, is the *null* label, "no class". It is added to the time
# embedding, so it reaches every ResBlock the same way $t$ does. Training drops labels to the null label
# at random, so one network is both the conditional and the unconditional model that classifier-free
# guidance (Ho & Salimans 2022) mixes. Calling a conditional model without labels means the null label.

# %%
ddpm_teach.course.section("8. Conditioning and variance")
cond = wake_up(UNet(SMALL, num_classes=10)).eval()
labels = torch.tensor([0, 3, 9, 10])                        # 10 is the null label
with torch.no_grad():
    out_labels = cond(x_t, t, labels)
    out_none = cond(x_t, t)
    out_null = cond(x_t, t, cond.null_labels(4))
print("label_emb:", cond.label_emb, "| rows 0..9 are the classes, row 10 the null label")
print("cond(x_t, t, labels):", tuple(out_labels.shape))
print("cond(x_t, t) == cond(x_t, t, null labels):", torch.equal(out_none, out_null))
print("a real label changes the prediction:", not torch.allclose(out_labels[:3], out_null[:3]))
print("extra parameters for the class embedding:", cond.num_parameters() - models["small"].num_parameters(),
      "= 11 ×", cond.label_emb.embedding_dim)

# %% [markdown]
# **Learned variance** (notebook 08). With `learn_sigma=True` the output has **2C channels**: the first C
# are $\hat\varepsilon$, the other C the interpolation weight $v$ of Improved DDPM (Nichol & Dhariwal
# 2021, eq. 15), $\Sigma_\theta = \exp\big(v \log\beta_t + (1-v)\log\tilde\beta_t\big)$. Only `conv_out`
# changes. The last line is a CIFAR-10-shaped model: 32×32 RGB images, whose levels are 32, 16 and 8, so
# its attention resolution is 8. (`attention_resolutions` lists side lengths; one that matches no level
# adds no attention, apart from the bottleneck's, which is always there.)

# %%
for cfg in [SMALL, UNetConfig(**{**SMALL.to_dict(), "learn_sigma": True}),
            UNetConfig(**{**SMALL.to_dict(), "image_size": 32, "in_channels": 3, "learn_sigma": True,
                          "attention_resolutions": (8,)})]:
    m = UNet(cfg)
    x_in = torch.zeros(2, cfg.in_channels, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        out = m(x_in, 0)
    print(f"in_channels={cfg.in_channels} learn_sigma={cfg.learn_sigma!s:5}: input {list(x_in.shape)} → output "
          f"{list(out.shape)}   ({m.num_parameters():,} parameters)")
eps_part, v_part = out.chunk(2, dim=1)
print("split with out.chunk(2, dim=1):", list(eps_part.shape), "(ε̂) and", list(v_part.shape), "(v)")

# %% [markdown]
# **The model knows nothing about schedules.** Nothing in `UNetConfig` mentions $T$, $\beta_t$ or
# $\bar\alpha_t$: the network maps $(x_t, t, \text{label})$ to a tensor, and $t$ is just a number fed to
# the sinusoid, so even a timestep no schedule has is accepted. The schedule lives in `NoiseSchedule`,
# the training loop (notebook 04) and the samplers (notebooks 05, 06); one trained model can therefore
# be sampled with DDPM or DDIM, with any number of steps.

# %%
print("UNetConfig fields:", [f.name for f in fields(UNetConfig)])
with torch.no_grad():
    print("t = 5000, beyond any T = 1000 schedule, runs:", tuple(awake(x_t, 5000).shape))

# %% [markdown]
# ## 9. How long does one forward pass take?
#
# The time of one forward pass at batch 64 (the batch size the shipped model of notebook 04 was trained
# with; 04's short demo run uses 32) on the CPU of this machine, and of a forward + backward pass, which is
# most of a training step. No GPU is needed for this notebook; training (notebook 04) is where a GPU pays off.

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section("9. Forward-pass time")
x_batch = torch.randn(TIMING_BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(6))
t_batch = torch.randint(0, 1000, (TIMING_BATCH,), generator=torch.Generator().manual_seed(7))


def seconds_per_call(fn, repeats: int = TIMING_REPEATS) -> float:
    fn()                                                      # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


with timed("this cell"):
    small_model = UNet(SMALL)
    with torch.no_grad():
        forward_s = seconds_per_call(lambda: small_model.eval()(x_batch, t_batch))
    # a stand-in loss, to time the backward pass too
    train_step_s = seconds_per_call(lambda: small_model.train()(x_batch, t_batch).square().mean().backward())
    default_model = UNet(DEFAULT).eval()
    with torch.no_grad():
        default_forward_s = seconds_per_call(lambda: default_model(x_batch, t_batch), repeats=1)
params_ratio = default_model.num_parameters() / small_model.num_parameters()
print(f"small UNet,   batch {TIMING_BATCH}: forward {forward_s:.2f} s, forward + backward {train_step_s:.2f} s "
      f"(mean of {TIMING_REPEATS}); forward + backward = {train_step_s / forward_s:.1f} × forward")
print(f"default UNet, batch {TIMING_BATCH}: forward {default_forward_s:.2f} s = {default_forward_s / forward_s:.1f} × "
      f"the small one's, with {params_ratio:.1f} × its parameters")
print(f"1,000 training steps of the small UNet at this speed: about {1000 * train_step_s / 60:.0f} min "
      "of forward + backward passes")
print(f"on {ddpm_teach.course.machine()}, torch {torch.__version__}")

# %% [markdown]
# The printout is this machine's and moves from run to run (more so on a busy machine), so nbval does not
# check it. Read it line by line. The first line: a forward + backward pass, most of a training step,
# costs a few forward passes (the ratio at its end), because the backward pass computes gradients for
# both the activations and the weights. The second line: the default UNet against the small one, in time
# and in parameters. The third line: what that means for a training run of only 1,000 steps. That is why
# notebook 04 trains the small model for its short CPU run, and leaves the default one to a GPU.

# %% [markdown]
# ## 10. Block variants: BigGAN resampling and ConvNeXt blocks
#
# Two block designs from the wider literature turn up in diffusion UNets. `UNetConfig` has a field
# for each, so `python -m ddpm_teach train` (notebook 04) has a flag for each, `--resblock-updown` and
# `--block convnext` (with `--convnext-mult`), and a checkpoint records them:
#
# - **BigGAN resampling** (`resblock_updown=True`). Brock et al. (2019, Appendix B, Fig. 15) resample
#   *inside* a residual block: the generator's blocks upsample between the first activation and the
#   first conv, the discriminator's blocks average-pool at the end. Song et al. (2021) used such
#   blocks in their score-SDE networks, and Dhariwal & Nichol (2021, §3, Table 1) kept them in their
#   ablated diffusion model, in the form that guided-diffusion's `ResBlock(up=..., down=...)` and
#   `ddpm_teach` use for both directions: the main path is GroupNorm·SiLU, then the resampling, then
#   the two 3×3 convs; the skip path is resampled without parameters (2×2 average pooling down,
#   nearest-neighbour doubling up) and, if the width changes, goes through a 1×1 conv. Here they
#   replace the `Downsample` (a stride-2 3×3 conv) and `Upsample` (nearest doubling, then a 3×3 conv)
#   layers between levels. Each resampling point now has two convs, two norms and the time
#   embedding instead of one conv: more parameters (about 13% at the course's widths), and the
#   network sees the timestep while it changes resolution.
# - **ConvNeXt blocks** (`block="convnext"`). Liu et al. (2022, "A ConvNet for the 2020s", §2.3-2.6 and
#   Fig. 4) rebuilt the ResNet block in the image of a Transformer block: a **depthwise** 7×7 conv
#   (one 7×7 filter per channel: it mixes space, not channels, for $49C$ weights and $C$ biases), one
#   LayerNorm (over the channels, at each position), and an **inverted bottleneck**: a 4×-wide MLP
#   of 1×1 convs that mixes channels, with GELU. lucidrains' denoising-diffusion-pytorch and the
#   Hugging Face "Annotated Diffusion" post used a ConvNeXt block in their UNets in 2022, in a
#   different form, which `ddpm_teach` follows: the time embedding is added after the depthwise
#   conv, a GroupNorm with one group (it normalises over C, H and W together, unlike Liu et al.'s
#   per-position LayerNorm) before each conv, and 3×3 convs in a 2× bottleneck (`convnext_mult=2`).
#   The embedding goes through SiLU and a Linear layer, as in our ResBlock (lucidrains used GELU).
#   Both the repository and the post have since gone back to ResNet blocks.
#
# `block_trace(block, x, emb)` runs one block and lists each layer with the shape it returns; the
# activations are function calls, not layers, so the layer they follow says "→ SiLU" or "→ GELU".
# `draw_block` draws the same trace. Here are a ResBlock, a BigGAN downsampling ResBlock and a
# ConvNeXt block, each fed a [2, 32, 14, 14] input and the 128-wide embedding of the small UNet:

# %%
ddpm_teach.course.section("10. Block variants")
x_block = torch.randn(2, 32, 14, 14, generator=torch.Generator().manual_seed(8))
emb_block = torch.randn(2, 128, generator=torch.Generator().manual_seed(9))
BLOCKS = {
    "ResBlock 32→64": ResBlock(32, 64, emb_dim=128, dropout=0.1, groups=8),
    "BigGAN ResBlock, down": ResBlock(32, 32, emb_dim=128, dropout=0.1, groups=8, resample="down"),
    "ConvNeXt 32→64": ConvNeXtBlock(32, 64, emb_dim=128, dropout=0.1, mult=2),
}
for title, block in BLOCKS.items():
    block.eval()                                    # dropout off, so the outputs below are exact
    print(f"{title}: {sum(p.numel() for p in block.parameters()):,} parameters")
    for name, layer, shape in block_trace(block, x_block, emb_block):
        print(f"    {name:11s} {layer:34s} → {list(shape)}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(18, 6))
for ax, (title, block) in zip(axes, BLOCKS.items()):
    draw_block(block, x_block, emb_block, ax=ax, title=title)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the traces against the pictures. The BigGAN block's `h_resample` halves the side after
# `norm1`·SiLU and before `conv1`, so both of its convs run at 7×7, a quarter of the positions; its
# skip path (`x_resample`, right) is average pooling and nothing else, because the width does not
# change. (The *up* blocks do the opposite: both convs run at the doubled side, which costs compute.)
# The ConvNeXt block keeps `dwconv` at the input's 32 channels (the embedding is projected to 32,
# not 64), widens to $2 \times 64 = 128$ channels in `conv1` and comes back to 64 in `conv2`.
#
# A check that the BigGAN block does what the picture says: `conv2` starts at zero in every block
# (§4), so a fresh resampling block is exactly its skip path, here 2×2 average pooling, whatever the
# embedding:

# %%
with torch.no_grad():
    pooled = BLOCKS["BigGAN ResBlock, down"](x_block, emb_block)
print("fresh BigGAN down block == avg_pool2d(x, 2):", torch.equal(pooled, F.avg_pool2d(x_block, 2)))

# %% [markdown]
# The same switches on the whole network. At the small configuration's widths the ConvNeXt UNet is
# much larger, because each block's 3×3 convs run into and out of a bottleneck twice as wide, and
# the four BigGAN resampling blocks add two convs each where there was one. To compare designs rather
# than sizes, `benchmarks/blocks.py` narrows the two variants until all three have the same
# parameter count (±5%): BigGAN with `base_channels=30` (and 6 GroupNorm groups, since 30 is not
# divisible by 8), ConvNeXt with `base_channels=24`. All three have dropout 0, as in the training
# recipe the benchmark uses.

# %%
SMALL_NO_DROPOUT = UNetConfig(**{**SMALL.to_dict(), "dropout": 0.0})
VARIANTS = {
    "resnet": SMALL_NO_DROPOUT,
    "resnet + BigGAN": UNetConfig(**{**SMALL_NO_DROPOUT.to_dict(), "resblock_updown": True, "base_channels": 30,
                                     "norm_groups": 6}),
    "convnext": UNetConfig(**{**SMALL_NO_DROPOUT.to_dict(), "block": "convnext", "base_channels": 24}),
}
small_params = UNet(SMALL).num_parameters()
print(f"{'variant':16s} {'at base 32':>10s}   {'as benchmarked':>19s}   {'vs resnet':>9s}")
for name, cfg in VARIANTS.items():
    same_width = UNet(UNetConfig(**{**cfg.to_dict(), "base_channels": 32, "norm_groups": 8})).num_parameters()
    matched = UNet(cfg).num_parameters()
    print(f"{name:16s} {same_width:>10,}   {f'{matched:,} (base {cfg.base_channels})':>19s}   "
          f"{matched / small_params - 1:>+9.1%}")

# %% [markdown]
# The BigGAN variant as benchmarked (base 30, so its widths are 30 and 60 where §2's diagram has 32
# and 64):

# %%
fig = draw_unet(VARIANTS["resnet + BigGAN"])
plt.show()

# %% [markdown]
# The green boxes between levels are now ResBlocks that downsample, and the expanding path upsamples
# with a ResBlock too (the green label between levels).
#
# Equal parameters are not equal time. A conv does $2HW$ multiply-adds per weight, so at equal
# parameters what differs is the resolution the weights run at (the BigGAN up blocks run at the
# larger side) and the work that has no weights: a depthwise conv moves a lot of data for little
# arithmetic, and the ConvNeXt block normalises and applies GELU to a tensor twice as wide. The cell
# below times a forward + backward pass of each benchmarked variant on this machine, in fp32 without
# torch.compile (the benchmark trains in bf16 where the CPU has it, compiled):

# %%
# NBVAL_IGNORE_OUTPUT
step_s = {}
for name, cfg in VARIANTS.items():
    variant_model = UNet(cfg).train()
    step_s[name] = seconds_per_call(lambda: variant_model(x_batch, t_batch).square().mean().backward())
for name, seconds in step_s.items():
    print(f"{name:16s} forward + backward at batch {TIMING_BATCH}: {seconds:.2f} s "
          f"({seconds / step_s['resnet']:.2f} × resnet; mean of {TIMING_REPEATS})")
print(f"on {ddpm_teach.course.machine()}")

# %% [markdown]
# Read the ratios above: they are this machine's, and the ranking can differ on another CPU or a
# GPU. A variant that is slower per step sees fewer images in a fixed training time.
#
# **Measured.** Which design gives the better model for the same budget? `benchmarks/blocks.py` trains
# each variant with the CPU fast path of notebook 04 (`--preset cpu-fast`: batch 64, bf16 where the
# CPU has it, the learning rate's cosine decay of notebook 04 §6 fitted to the time budget) for the same 15 minutes on
# 2 cores, from the same seed (so the same data order), then samples N = 1000 images with DDIM-50
# (notebook 06) and scores them with classifier-FID (notebook 05) against the test set, beside the
# real-vs-real floor at the same N. torch.compile is probed per variant, and each trains with
# whichever was faster on that machine. The next cell reads the results file that the command wrote
# (the command, the machine and every number are in it) and prints the table:

# %%
# NBVAL_IGNORE_OUTPUT
import json

results_dir = repo_root() / "benchmarks" / "results"
blocks_results = json.loads((results_dir / "blocks.json").read_text())
print(blocks_results["command"], "on", blocks_results["machine"][1].replace("CPU:", "").strip())
print(f"sampling: {blocks_results['sampler']}, precision {blocks_results['precision']}")
print(f"\n{'variant':16s} {'params':>9s} {'compile':>7s} {'steps':>7s} {'img/s':>6s} {'FID':>6s} {'floor':>6s} {'sample s/1000':>13s}")
for r in blocks_results["rows"]:
    print(f"{r['variant']:16s} {r['params']:>9,} {'yes' if r['compile'] else 'no':>7s} {r['steps']:>7,} "
          f"{r['train_img_per_s']:>6.0f} {r['fid']:>6.3f} {r['fid_floor']:>6.3f} {r['sample_s_per_1000']:>13.1f}")
runs = [blocks_results] + [json.loads(f.read_text()) for f in sorted(results_dir.glob("blocks_seed*.json"))]
fids = {r["variant"]: [] for r in blocks_results["rows"]}
for run in runs:
    for r in run["rows"]:
        fids[r["variant"]].append(r["fid"])
seeds = [run["sample_seed"] or 0 for run in runs]
print(f"\nFID at sampling seeds {seeds} (the same trained models, the same noise for every variant):")
for variant, values in fids.items():
    gaps = [f - base for f, base in zip(values, fids["resnet"])]
    line = f"  {variant:16s} " + " / ".join(f"{f:.3f}" for f in values)
    if variant != "resnet":
        same_sign = all(g > 0 for g in gaps) or all(g < 0 for g in gaps)
        line += (f"   − resnet: " + " / ".join(f"{g:+.3f}" for g in gaps)
                 + ("  (the same sign at every seed)" if same_sign else "  (changes sign: not resolved)"))
    print(line)
print(f"the seed moves every variant's FID by up to {max(max(v) - min(v) for v in fids.values()):.3f}")
lowest = {min(fids, key=lambda v: fids[v][i]) for i in range(len(runs))}
print("lowest FID at every seed:" if len(lowest) == 1 else "lowest FID, by seed:", ", ".join(sorted(lowest)))

# %% [markdown]
# Read the table with its limits: one training run per variant, 15 minutes each, one machine. The
# seed lines re-sample the same trained models with other noise. Every variant gets the same noise
# at a given seed, so the seed moves all FIDs together (by the amount printed last), and a gap to
# resnet that keeps its sign at every seed is a real difference between *these trained models*;
# with one training run per variant, the spread over training runs is not measured. Compare the
# steps column with the FID column: in a fixed time, a slower block also means fewer updates. The published evidence is about BigGAN resampling only (Dhariwal & Nichol's Table 1,
# at a fixed number of iterations on ImageNet 128, not at equal parameters or equal time); it does
# not cover ConvNeXt blocks.

# %% [markdown]
# ## Exercises
#
# Each exercise is checked with one call, which prints `Correct!` or a hint.
#
# **Exercise 1 (shapes).** A UNet built with `UNetConfig(image_size=32, in_channels=3, base_channels=64,
# channel_mults=(1, 2, 3))` is given a batch of 8 images. What is the shape `(B, C, H, W)` of the output
# of the **second** downsample, `downsamples.1`? Work it out on paper, then check it. (Mind which level's
# width it carries: the three levels have three different widths.)
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 1: uncomment, fill in and run.
# answer_shape = (..., ..., ..., ...)
# ddpm_teach.exercises.nb03.check_shape_after_second_downsample(answer_shape)

# %% [markdown]
# **Exercise 2 (parameters by formula).** How many parameters does
# `ResBlock(in_ch=64, out_ch=128, emb_dim=256, dropout=0.1, groups=8)` have? Count them from the
# formulas of §7 and the block's structure in §4, then (optionally) confirm with code.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 2: uncomment, fill in and run.
# answer_resblock = ...
# ddpm_teach.exercises.nb03.check_resblock_parameters(answer_resblock)

# %% [markdown]
# **Exercise 3 (scaling).** The default UNet (`base_channels=64`) has 6,469,889 parameters. Estimate,
# *without building it*, how many parameters the default UNet with `base_channels=96` has. Any answer
# within 1% of the exact count is accepted.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 3: uncomment, fill in and run.
# answer_base96 = ...
# ddpm_teach.exercises.nb03.check_parameter_count_base96(answer_base96)

# %% [markdown]
# **Exercise 4 (a ConvNeXt block by formula).** How many parameters does
# `ConvNeXtBlock(in_ch=64, out_ch=128, emb_dim=256, dropout=0.1, mult=2)` have? Use the trace of §10:
# which width does each layer see? (Mind the depthwise conv and where the embedding is added.)
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 4: uncomment, fill in and run.
# answer_convnext = ...
# ddpm_teach.exercises.nb03.check_convnext_parameters(answer_convnext)

# %% [markdown]
# ## Summary
#
# - The denoiser $\varepsilon_\theta(x_t, t)$ returns a tensor with the shape of $x_t$ (eq. 14 needs
#   one prediction per pixel), so it is an image-to-image UNet: a contracting path, a bottleneck, an
#   expanding path, and skip connections that concatenate each contracting-path output onto an
#   expanding-path ResBlock at the same resolution.
# - The timestep enters as a sinusoidal embedding (Transformer §3.5; geometric frequencies from 1 to
#   1/10000), passed through an MLP and added, per channel, inside **every** ResBlock. A class embedding
#   (K classes + 1 null label) is added to it.
# - ResBlocks use GroupNorm, which normalises each image on its own: batch size and batch composition
#   do not matter. `conv2`, attention's projection and `conv_out` start at zero, so a fresh model
#   predicts $\hat\varepsilon = 0$ and each block starts as the identity.
# - Self-attention costs $\propto (HW)^2$: at 7×7 it is cheap, at 28×28 it costs almost three
#   convolutions and 0.6 GB of weights per batch of 64 (see §5's timing), so it is used only at low resolution.
# - `trace_shapes` shows the side 28 → 14 → 7 → 14 → 28 and the channel widths `base × mult`; the
#   default model has 6,469,889 parameters, the small CPU model 1,112,801, about 60% of them in the
#   expanding path; the count grows about quadratically with `base_channels`.
# - `learn_sigma=True` doubles the output channels (ε̂ and v); the model knows nothing about $T$ or
#   $\beta_t$, the schedule belongs to the training loop and the samplers.
# - `resblock_updown=True` resamples inside residual blocks (BigGAN; Dhariwal & Nichol §3): average
#   pooling or nearest doubling between GroupNorm·SiLU and the first conv, and on the skip path.
#   `block="convnext"` swaps every ResBlock for a ConvNeXt block: a depthwise 7×7 conv, then a 2×-wide
#   3×3 bottleneck. At equal width both are larger; `benchmarks/blocks.py` compares them at equal
#   size and equal training time, and §10 prints what it measured.
#
# **Next:** notebook 04 trains this network with Algorithm 1.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises, one hidden cell each: double-click a cell (or click its title) to
# show the code. Try your own answer first.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
answer_shape = (8, 64 * 2, 32 // 2 // 2, 32 // 2 // 2)   # batch kept; level 1's width base·mult[1]; two halvings
ddpm_teach.exercises.nb03.check_shape_after_second_downsample(answer_shape)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
in_ch, out_ch, emb_dim = 64, 128, 256
answer_resblock = (
    2 * in_ch                           # norm1: GroupNorm scale + shift per channel
    + 9 * in_ch * out_ch + out_ch       # conv1: 3×3
    + emb_dim * out_ch + out_ch         # emb_proj: Linear
    + 2 * out_ch                        # norm2
    + 9 * out_ch * out_ch + out_ch      # conv2: 3×3
    + in_ch * out_ch + out_ch           # skip: 1×1 conv, because in_ch ≠ out_ch
)
print("by code:", sum(p.numel() for p in ResBlock(in_ch, out_ch, emb_dim, dropout=0.1, groups=8).parameters()))
ddpm_teach.exercises.nb03.check_resblock_parameters(answer_resblock)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
answer_base96 = round(6_469_889 * (96 / 64) ** 2)   # conv weights grow with C_in·C_out: quadratic in base_channels
ddpm_teach.exercises.nb03.check_parameter_count_base96(answer_base96)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 4 (double-click to show the code)
in_ch, out_ch, emb_dim, mult = 64, 128, 256, 2
answer_convnext = (
    49 * in_ch + in_ch                        # dwconv: one 7×7 filter (and bias) per channel
    + emb_dim * in_ch + in_ch                 # emb_proj: added after dwconv, where there are in_ch channels
    + 2 * in_ch                               # norm1: GroupNorm(1, in_ch), scale + shift per channel
    + 9 * in_ch * mult * out_ch + mult * out_ch   # conv1: 3×3, widens to mult·out_ch
    + 2 * mult * out_ch                       # norm2 on the wide tensor
    + 9 * mult * out_ch * out_ch + out_ch     # conv2: 3×3, back to out_ch
    + in_ch * out_ch + out_ch                 # skip: 1×1 conv, because in_ch ≠ out_ch
)
print("by code:", sum(p.numel() for p in ConvNeXtBlock(in_ch, out_ch, emb_dim, dropout=0.1, mult=mult).parameters()))
ddpm_teach.exercises.nb03.check_convnext_parameters(answer_convnext)

# %% [markdown]
# ## Run time on your machine
#
# The cell below prints how long each section of this notebook took here, on this machine; compare it
# with the runtime note at the top. The printed total covers the sections only; the runtime note at the
# top also counts starting the kernel and importing: typically 5-15 s more, and runs vary with
# the machine's load.

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section_times()

# %% [markdown]
# ← [02 · Noise schedules](02_noise_schedules.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [04 · Training →](04_training.ipynb)
