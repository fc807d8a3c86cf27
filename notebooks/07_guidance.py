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
# # 07 · Classifier-free guidance
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/07_guidance.ipynb)
#
# ← [06 · DDIM sampling](06_ddim_sampling.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [08 · Learned variance →](08_learned_variance.ipynb)
#
# Notebooks 05 and 06 sampled from an *unconditional* model: you get a Fashion-MNIST item, but you
# cannot say which. This notebook asks for a class ("a sneaker, please"), and then asks *harder*.
# **Classifier-free guidance** (Ho & Salimans 2022, *Classifier-Free Diffusion Guidance*,
# [arXiv:2207.12598](https://arxiv.org/abs/2207.12598)) trains one network to be both a conditional
# and an unconditional model, and at sampling time pushes each step past the conditional prediction,
# away from the unconditional one. One number, the guidance scale, trades sample diversity for how
# strongly the samples look like their class. We measure that trade-off.
#
# **Learning goals.** By the end you can
# 1. say how a class label enters the UNet (an embedding added to the time embedding) and what the
#    extra *null* label (index `num_classes`) is for;
# 2. write down label dropout, the one change to training (Ho & Salimans, Algorithm 1);
# 3. write the guided prediction $\tilde\varepsilon = \varepsilon_u + s(\varepsilon_c - \varepsilon_u)$,
#    convert it to the paper's $(1+w)\varepsilon_c - w\varepsilon_u$ ($w = s - 1$), and say what
#    $s = 0$, $s = 1$ and $s > 1$ do;
# 4. read a guidance-scale sweep of samples, and explain the measured trade-off between
#    classifier-FID (quality and diversity) and conditional accuracy (does the sample show its class?);
# 5. explore guidance interactively, class by class.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-11-22): 204 s
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-02, 12-07): 251-326 s (four runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 14-19 s (AMD, 2026-12-07).
#   Slower with no native bf16, fewer cores or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - Most of it is sampling for the measured sweep of §5 (a guided step costs two UNet evaluations per image).
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest) sets how many images are
# sampled and with how many DDIM steps (section "Imports and the size knob"). The maths cells print
# the same at both sizes and are checked by `pytest --nbval`; the measured numbers are not.

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
# ## Imports and the size knob
#
# Every size-dependent number comes from `ddpm_teach.course.by_size(full=..., ci=...)`. Sampling is
# DDIM with $\eta = 0$ (notebook 06): deterministic, so every guidance scale starts from the same
# noise and follows the same path. The DDIM paper finds $\eta = 0$ good in 20 to 50 steps; notebook 06
# measures $\eta = 0$ against $\eta = 1$ on the shipped unconditional checkpoint. With this conditional
# checkpoint the $\eta = 0$ samples below are mostly clean garments; a few carry a blotchy,
# high-contrast pattern (§6).

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports and the size knob")      # the last cell prints the time per section

import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import ddpm_teach.exercises.nb07
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, timed
from ddpm_teach.data import load_dataset
from ddpm_teach.evaluation import Evaluator
from ddpm_teach.forward import predict_x0_from_eps, q_sample
from ddpm_teach.plotting import show_images
from ddpm_teach.samplers import DDIMSampler, guided_model_output, sample
from ddpm_teach.unet import timestep_embedding
from ddpm_teach.widgets import GuidanceExplorer, guidance_state, plot_guidance_state

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()    # "full" or "ci"

SCALES = [0.0, 1.0, 1.5, 2.0, 3.0, 5.0]     # the guidance scales s of the sweep (§4 and §5)
GRID_STEPS = by_size(full=50, ci=5)         # DDIM steps for the sweep grid of §4
MEASURE_N = by_size(full=200, ci=20)        # images per guidance scale for the measurements of §5
MEASURE_STEPS = by_size(full=20, ci=5)      # DDIM steps for them
SIGNAL_BATCH = by_size(full=64, ci=8)       # test images for the x̂_0 curve of §3
EXPLORER_N = by_size(full=16, ci=8)         # samples per grid in the explorer of §6
EXPLORER_STEPS = by_size(full=10, ci=5)     # DDIM steps in the explorer

# %%
# NBVAL_IGNORE_OUTPUT
print(f"size: {SIZE}; sweep grid: DDIM-{GRID_STEPS}; measurements: N={MEASURE_N} per scale, DDIM-{MEASURE_STEPS}; "
      f"explorer: {EXPLORER_N} samples, DDIM-{EXPLORER_STEPS}")

# %% [markdown]
# ## 1. Class conditioning: one embedding added to the time embedding
#
# The shipped conditional model, `checkpoints/fashion_mnist_cfg.pt`, is the UNet of notebook 03 with
# `num_classes=10`, trained like the unconditional one of notebook 04 (same size, same schedule), with
# one change to training described in §2. `load_diffusion_model` rebuilds it from the checkpoint's own
# config and loads its EMA weights.

# %%
ddpm_teach.course.section("1. Class conditioning")
model, schedule, ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_cfg.pt"))
classes = ckpt["dataset"]["classes"]
config = model.config
print(f"schedule: {ckpt['schedule']}")
print(f"UNet: base_channels={config.base_channels}, channel_mults={config.channel_mults}, "
      f"num_classes={config.num_classes}, {sum(p.numel() for p in model.parameters()):,} parameters")
print("classes:", ", ".join(f"{k}={name}" for k, name in enumerate(classes)))
print(f"label embedding table: {tuple(model.label_emb.weight.shape)}  (10 classes + 1 null label, "
      f"4·base_channels = {4 * config.base_channels} wide)")
print(f"the null label: {int(model.null_labels(1)[0])}")

# %% [markdown]
# How the label gets in (notebook 03, §8): the timestep $t$ becomes a sinusoidal embedding, an MLP
# maps it to a vector $e_t$ of width $4\cdot$`base_channels`, and a class label $y$ is looked up in an
# embedding table and **added** to it,
#
# $$e = \mathrm{MLP}\big(\mathrm{sinusoid}(t)\big) + E[y], \qquad E \in \mathbb{R}^{(K+1)\times 4\cdot\text{base}} .$$
#
# Every ResBlock adds a projection of $e$ to its feature maps, so the class steers every level of
# the network, exactly as the timestep does. The table has $K + 1 = 11$ rows: row $K = 10$ is the
# **null label** $\varnothing$, "no class given". With it, the same network is also an
# unconditional model, $\varepsilon_\theta(x_t, t, \varnothing)$. Calling the model with
# `labels=None` uses the null label.
#
# A teaching version of the embedding, checked against what the first ResBlock actually receives
# (caught with a forward hook):

# %%
x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))     # [B, C, H, W]
t = torch.tensor([0, 250, 500, 999])                                           # 0-based timesteps
y = torch.tensor([0, 3, 7, 10])                                                # 10 = the null label

seen = {}
first_block = model.down_levels[0].blocks[0]
hook = first_block.register_forward_hook(lambda module, args, output: seen.update(emb=args[1]))
with torch.no_grad():
    model(x, t, y)
    emb = model.time_mlp(timestep_embedding(t, config.base_channels)) + model.label_emb(y)   # (B, 4·base)
hook.remove()
torch.testing.assert_close(emb, seen["emb"])
print(f"e = MLP(sinusoid(t)) + E[y] is what every ResBlock gets: shape {tuple(emb.shape)}")

with torch.no_grad():
    same = torch.equal(model(x, t), model(x, t, model.null_labels(4)))
print("model(x_t, t) with no labels is model(x_t, t, null label):", same)

# %% [markdown]
# What did the model learn about the classes? The cosine similarity between the rows of the label
# embedding table (a trained model's picture, so it changes with the checkpoint): classes the model
# finds alike may get similar embeddings. The null label's row is one more learned vector: the
# unconditional model's "class". In the stored run the table shows no such structure: every
# off-diagonal similarity rounds to between −0.2 and 0.2, about what independent random 128-wide
# vectors give (standard deviation $1/\sqrt{128} \approx 0.09$). After 4,592 training steps of batch
# 64, about five epochs (`checkpoints/README.md`), the embeddings are still close to unrelated
# directions, and they still steer the samples strongly, as §4 and §5 show.

# %%
with torch.no_grad():
    table = torch.nn.functional.normalize(model.label_emb.weight, dim=1)       # (K + 1, 4·base)
    similarity = (table @ table.T).numpy()
names = [*classes, "∅ (null)"]
fig, ax = plt.subplots(figsize=(6.2, 5.2))
image = ax.imshow(similarity, cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
ax.set_yticks(range(len(names)), names, fontsize=8)
for i in range(len(names)):
    for j in range(len(names)):
        ax.text(j, i, f"{similarity[i, j]:.1f}", ha="center", va="center", fontsize=6,
                color="white" if abs(similarity[i, j]) > 0.6 else "black")    # white on the dark cells
fig.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
ax.set_title("label embeddings E[y] of the shipped model")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Label dropout: one network, two models (Ho & Salimans, Algorithm 1)
#
# To have an unconditional model for free, training sometimes hides the label. Algorithm 1 of the
# paper ("joint training of a diffusion model with classifier-free guidance"), in this course's
# notation:
#
# > **repeat**
# > 1. $(x_0, c) \sim p(x_0, c)$: an image and its class
# > 2. $c \leftarrow \varnothing$ with probability $p_\text{uncond}$ (**label dropout**)
# > 3. $t \sim \mathrm{Uniform}\{0, \dots, T-1\}$ (0-based; the paper samples a log-SNR $\lambda$ in
# >    continuous time), $\varepsilon \sim \mathcal N(0, I)$,
# >    $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ (DDPM eq. 4)
# > 4. take a gradient step on $\nabla_\theta \lVert \varepsilon - \varepsilon_\theta(x_t, t, c)\rVert^2$ (DDPM eq. 14)
# >
# > **until** converged
#
# Everything but step 2 is DDPM's Algorithm 1 (notebook 04). With $p_\text{uncond} = 0.1$, one
# network learns the conditional $\varepsilon_\theta(x_t, t, c)$ on 90% of the examples and the
# unconditional $\varepsilon_\theta(x_t, t, \varnothing)$ on the other 10%. The paper found
# $p_\text{uncond} = 0.1$ or $0.2$ better than $0.5$ (their Table 1): the unconditional model
# needs only a small share of the capacity. In the package this is three lines of
# `train_step` in `ddpm_teach/training.py` (its `drop_labels`); here is the same step on one batch of labels:

# %%
ddpm_teach.course.section("2. Label dropout")
p_uncond = ckpt["train_config"]["label_dropout"]
null_label = config.num_classes
generator = torch.Generator().manual_seed(0)
labels = torch.randint(0, config.num_classes, (64,), generator=generator)     # a batch's true classes
drop = torch.rand(64, generator=generator) < p_uncond                          # step 2 of Algorithm 1
train_labels = torch.where(drop, torch.full_like(labels, null_label), labels)  # what the model is given
print(f"p_uncond = {p_uncond} (train_config['label_dropout'] of the shipped checkpoint)")
print("true labels   :", labels[:20].tolist())
print("model is given:", train_labels[:20].tolist())
print(f"dropped in this batch: {int(drop.sum())} of 64")
many = torch.rand(1_000_000, generator=torch.Generator().manual_seed(1)) < p_uncond
print(f"dropped over a million draws: {many.double().mean():.4f}")

# %% [markdown]
# ## 3. The guided prediction $\tilde\varepsilon$
#
# At sampling time the network gives two predictions for the same $x_t$: the conditional
# $\varepsilon_c = \varepsilon_\theta(x_t, t, c)$ and the unconditional
# $\varepsilon_u = \varepsilon_\theta(x_t, t, \varnothing)$. Classifier-free guidance combines them.
# The paper writes (Ho & Salimans 2022, **eq. 6**)
#
# $$\tilde\varepsilon_\theta(x_t, c) = (1 + w)\,\varepsilon_\theta(x_t, t, c) - w\,\varepsilon_\theta(x_t, t, \varnothing),$$
#
# and this course (like diffusers and most code) uses the guidance scale $s = 1 + w$:
#
# $$\boxed{\tilde\varepsilon = \varepsilon_u + s\,(\varepsilon_c - \varepsilon_u)} \qquad
# \text{(`ddpm\_teach.samplers.guided\_model\_output`)}.$$
#
# Expanding, $\varepsilon_u + s(\varepsilon_c - \varepsilon_u) = s\,\varepsilon_c - (s-1)\,\varepsilon_u
# = (1+w)\,\varepsilon_c - w\,\varepsilon_u$: the same thing, with **$w = s - 1$**. So
#
# | package $s$ | paper $w$ | what it is |
# |---|---|---|
# | 0 | −1 | the unconditional model, $\tilde\varepsilon = \varepsilon_u$ |
# | 1 | 0 | the plain conditional model, $\tilde\varepsilon = \varepsilon_c$ (no guidance) |
# | $> 1$ | $> 0$ | guidance: past $\varepsilon_c$, away from $\varepsilon_u$ |
#
# **Why it works** (the paper's §3.2). A trained $\varepsilon_\theta$ estimates a scaled score,
# $\varepsilon_\theta(x_t, t) \approx -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p_t(x_t)$. By Bayes'
# rule $p_t(c \mid x_t) \propto p_t(x_t \mid c)/p_t(x_t)$, so
# $\varepsilon_c - \varepsilon_u \approx -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p_t(c \mid x_t)$:
# the difference of the two predictions is the gradient of an *implicit classifier*. Then
#
# $$\tilde\varepsilon \approx -\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\big[\log p_t(x_t) + s\,\log p_t(c \mid x_t)\big],$$
#
# the score of $p_t(x_t)\,p_t(c \mid x_t)^s$: for $s > 1$ a sharpened conditional that favours
# images the (implicit) classifier is very sure about. This is classifier guidance (Dhariwal & Nichol
# 2021) with the classifier taken from the diffusion model itself, so no separate noisy-image
# classifier is trained. It is a heuristic: the guided $\tilde\varepsilon$ is in general not the exact
# score of any noised distribution (Bradley & Nakkiran 2024,
# [arXiv:2408.09000](https://arxiv.org/abs/2408.09000)), and what it samples depends on the sampler.
#
# A teaching version with two forward passes, checked against the package, which runs both passes as
# one batch of $2B$:

# %%
ddpm_teach.course.section("3. The guided prediction")
def guided_eps_by_hand(model, x_t, t, labels, s):
    """ε̃ = ε_u + s (ε_c − ε_u)  (Ho & Salimans eq. 6 with s = w + 1), two separate forward passes."""
    eps_c = model(x_t, t, labels)                                  # ε_θ(x_t, t, c)
    eps_u = model(x_t, t, model.null_labels(x_t.shape[0]))         # ε_θ(x_t, t, ∅)
    return eps_u + s * (eps_c - eps_u)


x_t = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(2))
t = torch.tensor([999, 800, 600, 400, 200, 50])
y = torch.tensor([0, 1, 5, 6, 7, 9])
with torch.no_grad():
    eps_c = model(x_t, t, y)
    eps_u = model(x_t, t, model.null_labels(6))
    for s in (0.0, 0.5, 1.0, 1.5, 3.0, 5.0):
        package = guided_model_output(model, x_t, t, y, guidance_scale=s)
        torch.testing.assert_close(guided_eps_by_hand(model, x_t, t, y, s), package)
        w = s - 1
        torch.testing.assert_close((1 + w) * eps_c - w * eps_u, package)          # the paper's form, eq. 6
    print("guided_eps_by_hand = guided_model_output = (1 + w)·ε_c − w·ε_u for s in 0, 0.5, 1, 1.5, 3, 5")
    print("s = 1 gives the conditional ε_c exactly:  ",
          torch.equal(guided_model_output(model, x_t, t, y, guidance_scale=1.0), eps_c))
    print("s = 0 gives the unconditional ε_u exactly:",
          torch.equal(guided_model_output(model, x_t, t, y, guidance_scale=0.0), eps_u))

# %% [markdown]
# `guided_model_output` takes a shortcut at those two scales: $s = 1$ needs only $\varepsilon_c$ and
# $s = 0$ only $\varepsilon_u$, one UNet evaluation each. Any other $s$ needs both, so a guided
# sampler costs **twice** as much per step. Every sampler of the package takes the guided
# prediction through `sample(model, sampler, labels=..., guidance_scale=s)`; the paper's
# Algorithm 2 plugs $\tilde\varepsilon$ into ancestral sampling, and here we plug it into DDIM.
#
# **Where does guidance act?** The model's $\varepsilon$ is easiest to read through the clean image it
# implies, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ (DDPM eq. 15),
# clipped to $[-1, 1]$ as the samplers do. Below, one test image is noised to four timesteps; for
# each $x_t$ the model is asked for $\hat x_0$ under the null label and under each of the ten
# classes.

# %%
test_data = load_dataset("fashion_mnist", train=False)
x0, y0 = test_data.batch(torch.arange(SIGNAL_BATCH))                       # [B, 1, 28, 28] in [-1, 1], [B]
noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
all_labels = torch.tensor([null_label, *range(config.num_classes)])        # ∅, then the ten classes
show_ts = [750, 600, 450, 300]
fig, axes = plt.subplots(len(show_ts), 1, figsize=(10, 1.15 * len(show_ts) + 0.6))
with torch.no_grad():
    for ax, step in zip(axes, show_ts):
        x_noisy = q_sample(schedule, x0[:1], step, noise[:1]).expand(len(all_labels), -1, -1, -1)  # (11, 1, 28, 28)
        eps = model(x_noisy, torch.full((len(all_labels),), step), all_labels)
        pred_x0 = predict_x0_from_eps(schedule, x_noisy, step, eps).clamp(-1, 1)                   # eq. 15
        show_images(torch.cat([x_noisy[:1], pred_x0]), nrow=12, ax=ax)
        ax.set_ylabel(f"t={step}", rotation=0, ha="right", va="center", fontsize=9)
for k, name in enumerate(["x_t", "∅ (null)", *classes]):
    axes[0].text(2 + 30 * k + 14, -3, name, ha="center", va="bottom", fontsize=7)
fig.suptitle(f"one x_t (a noised {classes[int(y0[0])]!r}), x̂_0 under each label", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# At high noise the label largely decides what the model "sees" in $x_t$: under different labels
# the same noisy image turns into different garments. As $t$ falls, the image itself pins $\hat x_0$ down and the labels
# matter less and less (how fast depends on the checkpoint). In the stored run, at $t = 750$ each
# class label gives its own item (trousers, a dress, a sandal, a bag, ...) and the null label a vague
# blob; at $t = 600$ the null label and the footwear labels already give a shoe, while the garment
# labels still give fading garments; by $t = 450$ every label gives the boot, with a faint trace of
# trousers or a dress under those two labels, and at $t = 300$ the eleven predictions look almost
# alike. The same measurement over a batch of
# test images with their true labels: the root-mean-square difference between $\hat x_0$ under the
# true class and under $\varnothing$, per pixel, against $t$.

# %%
signal_ts = torch.linspace(0, schedule.T - 1, 21).round().long()
difference = []
with torch.no_grad():
    for step in signal_ts.tolist():
        x_noisy = q_sample(schedule, x0, step, noise)                       # x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε
        t_batch = torch.full((len(x0),), step)
        eps_c, eps_u = model(x_noisy, t_batch, y0), model(x_noisy, t_batch, model.null_labels(len(x0)))
        x0_c = predict_x0_from_eps(schedule, x_noisy, step, eps_c).clamp(-1, 1)        # eq. 15, clipped
        x0_u = predict_x0_from_eps(schedule, x_noisy, step, eps_u).clamp(-1, 1)
        difference.append((x0_c - x0_u).flatten(1).pow(2).mean(1).sqrt().numpy())    # RMS per image
difference = np.stack(difference)                                          # (21 timesteps, B)

fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.plot(signal_ts.numpy(), np.median(difference, axis=1), "o-", color="C0", label="median over images")
ax.fill_between(signal_ts.numpy(), np.percentile(difference, 10, axis=1), np.percentile(difference, 90, axis=1),
                color="C0", alpha=0.2, label="10th to 90th percentile")
ax.set_xlabel("t (0-based; 999 is pure noise)")
ax.set_ylabel("RMS of x̂_0(c) − x̂_0(∅)")
ax.set_title(f"how much the class changes the predicted x_0 ({len(x0)} test images)", fontsize=10)
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Before clipping, guidance scales this difference by $s$:
# $\hat x_0(\tilde\varepsilon) = \hat x_0(\varepsilon_u) + s\big(\hat x_0(\varepsilon_c) - \hat x_0(\varepsilon_u)\big)$,
# since $\hat x_0$ is linear in $\varepsilon$ (affine, to be exact). In the stored run the median
# difference falls from about 0.55 at $t = 999$ to 0.3 at $t = 750$, 0.1 at $t = 500$ and below 0.05
# from $t = 350$ down. So guidance mostly shapes the early, noisy part of sampling, where the coarse
# form of the item is decided; near $t = 0$ there is little left for it to change.
#
# ## 4. A guidance-scale sweep
#
# Rows: the guidance scale $s$ (with the paper's $w = s - 1$). Columns: the ten classes. Every
# column starts from **the same noise** $x_T$ in every row, and DDIM with $\eta = 0$ is
# deterministic, so all that changes down a column is $s$. The top row, $s = 0$, is the
# unconditional model: the label is ignored and the column shows whatever that noise becomes.

# %%
ddpm_teach.course.section("4. A guidance-scale sweep")
# NBVAL_IGNORE_OUTPUT
grid_x_T = torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(4))     # one x_T per column
grid_labels = torch.arange(10)                                                          # column k asks for class k
sweep = {}
with timed(f"sampling the sweep grid ({len(SCALES)} scales × 10 classes, DDIM-{GRID_STEPS})"):
    for s in SCALES:
        sweep[s] = sample(model, DDIMSampler(schedule, steps=GRID_STEPS), x_T=grid_x_T, labels=grid_labels,
                          guidance_scale=s, progress=False)


# %%
def draw_sweep(sweep: dict, title: str):
    """One row per guidance scale, one column per class: sweep[s] is [10, 1, 28, 28]."""
    fig, axes = plt.subplots(len(sweep), 1, figsize=(10, 1.15 * len(sweep) + 0.6))
    for ax, (s, images) in zip(axes, sweep.items()):
        show_images(images, nrow=10, ax=ax)
        ax.set_ylabel(f"s={s:g}\n(w={s - 1:g})", rotation=0, ha="right", va="center", fontsize=9)
    for k, name in enumerate(classes):                     # class names over the columns (30 px per tile)
        axes[0].text(2 + 30 * k + 14, -3, name, ha="center", va="bottom", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


draw_sweep(sweep, f"classifier-free guidance: the same noise per column, DDIM-{GRID_STEPS}")
plt.show()

# %% [markdown]
# What to look for (the exact pictures depend on the checkpoint):
#
# * **$s = 0$**: unconditional samples, not sorted by column; some may be hard to name. In the
#   stored run they are mostly nameable items (sandals, tops, a dress, bag-like shapes), and only the
#   dress column happens to show its own class.
# * **$s = 1$**: plain conditional sampling. A well-trained model shows its class in almost every
#   column. In the stored run all ten columns do: the shipped model (4,592 steps of batch 64, about
#   five epochs on a CPU: `checkpoints/README.md`) draws a T-shirt, trousers, a pullover, a dress, a
#   coat, a sandal, a shirt, a sneaker, a bag and an ankle boot, though the T-shirt is dim with a
#   fine texture and the boot is dark and faint. (§5 measures it: accuracy 84.0% at $s = 1$.)
# * **$s = 1.5$ to $3$**: the shapes hardly change; contrast and outlines do. In the stored run the
#   boot is a clear boot from $s = 1.5$ on, the T-shirt and the pullover get brighter step by step,
#   the pullover grows a dark band across its chest, and the bag turns into a flat white rectangle.
#   (§5: accuracy 94.5% at $s = 1.5$, 100% at $s = 3$.)
# * **$s = 5$**: strongly guided. In the paper, contrast rises towards saturation, textures get
#   exaggerated and, across a class, samples start to look alike. Here contrast rises further (the
#   T-shirt and the pullover are the brightest of their columns, the bag is saturated white; the
#   sampler clips $\hat x_0$ to $[-1, 1]$ at every step, so the push past $\varepsilon_c$ ends in
#   bright, flat garments), and details change: the sandal becomes a different, heeled sandal and the
#   dress gets thin straps and a stray dot beside it. With one sample per class this grid cannot show
#   a loss of diversity; §5's FID, which compares whole sets, does see a cost. The explorer of §6 goes
#   up to $s = 6$.
#
# ## 5. Measured: quality versus accuracy
#
# Two numbers from the course's evaluation classifier (`ddpm_teach.evaluation`, a small CNN trained
# on Fashion-MNIST and shipped as weights):
#
# * **classifier-FID**: the Fréchet distance between Gaussians fitted to the classifier's features of
#   the samples and of the 10,000 test images (Heusel et al. 2017). It rises when samples look wrong
#   *and* when they lack diversity. Always read it next to its **floor**: the FID of $N$ real
#   training images against the same test set, about what a perfect generator would score at this $N$
#   (FID is biased upwards at small $N$).
# * **conditional accuracy**: the share of samples that the classifier assigns to the class they
#   were asked for.
#
# For each $s$ we sample $N$ images with labels cycling through the ten classes (so every class gets
# $N/10$), all scales from the same noise, and score them with `Evaluator.score`. The accuracy is
# also taken class by class (`Evaluator.accuracy` on each class's samples).

# %%
ddpm_teach.course.section("5. Quality versus accuracy")
# NBVAL_IGNORE_OUTPUT
with timed("Evaluator.load() (the classifier, and the features of the 10,000 test images)"):
    evaluator = Evaluator.load()
classifier = evaluator.classifier
print(f"classifier: {sum(p.numel() for p in classifier.parameters()):,} parameters; reference features: "
      f"{tuple(evaluator.test_features.shape)}")

# %%
# NBVAL_IGNORE_OUTPUT
measure_labels = torch.arange(MEASURE_N) % 10                       # 0, 1, ..., 9, 0, 1, ...: N/10 per class
measure_x_T = torch.randn(MEASURE_N, 1, 28, 28, generator=torch.Generator().manual_seed(5))
results = []
started = time.perf_counter()
for s in SCALES:
    t0 = time.perf_counter()
    images = sample(model, DDIMSampler(schedule, steps=MEASURE_STEPS), x_T=measure_x_T, labels=measure_labels,
                    guidance_scale=s, progress=False)
    seconds = time.perf_counter() - t0
    scores = evaluator.score(images, measure_labels)                # n, fid, fid_floor, accuracy, class_histogram
    per_class = [evaluator.accuracy(images[measure_labels == k], measure_labels[measure_labels == k])
                 for k in range(10)]
    results.append({"s": s, "w": s - 1, **scores, "per_class": per_class, "seconds": seconds})
    print(f"s={s:<4g} " + Evaluator.format_scores(scores) + f"  ({seconds:.0f} s)")
print(f"all {len(SCALES)} scales: {time.perf_counter() - started:.0f} s")

# %% [markdown]
# The table (the numbers come from this run: the checkpoint, $N$ and the number of steps all move
# them; at CI size $N$ is tiny and the FIDs are mostly noise):

# %%
# NBVAL_IGNORE_OUTPUT
print(f"N = {MEASURE_N} per scale (labels cycling over the 10 classes), DDIM-{MEASURE_STEPS}, same noise for every s")
print(f"real-vs-real FID floor at N = {MEASURE_N}: {results[0]['fid_floor']:.3f}\n")
print(f"{'s':>5}{'w':>6}{'N':>6}{'classifier-FID':>16}{'floor':>8}{'accuracy':>10}{'time':>8}")
for r in results:
    print(f"{r['s']:>5g}{r['w']:>6g}{r['n']:>6}{r['fid']:>16.3f}{r['fid_floor']:>8.3f}{100 * r['accuracy']:>9.1f}%"
          f"{r['seconds']:>7.0f}s")
best = min(results, key=lambda r: r["fid"])
edge = " (the largest s swept: FID may fall further beyond it)" if best is results[-1] else ""
print(f"\nlowest FID at s = {best['s']:g} (w = {best['w']:g}){edge}; highest accuracy at "
      f"s = {max(results, key=lambda r: r['accuracy'])['s']:g}")
print("(s = 0 is unconditional: its 'accuracy' is how often an unconditional sample happens to be the "
      "class written next to it)")

# %%
s_values = np.array([r["s"] for r in results])
fid = np.array([r["fid"] for r in results])
accuracy = 100 * np.array([r["accuracy"] for r in results])
floor = results[0]["fid_floor"]

fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
ax = axes[0, 0]
ax.plot(s_values, fid, "o-", color="C3", label="samples")
ax.axhline(floor, color="0.5", linestyle="--", label=f"real-vs-real floor (N={MEASURE_N})")
ax.set_xlabel("guidance scale s  (w = s − 1)")
ax.set_ylabel("classifier-FID (lower is better)")
ax.set_title("classifier-FID against s")
ax.legend(fontsize=8)

ax = axes[0, 1]
ax.plot(s_values, accuracy, "o-", color="C0")
ax.axhline(10, color="0.5", linestyle=":", label="chance (10 classes)")
ax.set_xlabel("guidance scale s  (w = s − 1)")
ax.set_ylabel("conditional accuracy (%)")
ax.set_ylim(0, 102)
ax.set_title("conditional accuracy against s")
ax.legend(fontsize=8, loc="center right")          # clear of the points, which climb to 100% on the right

ax = axes[1, 0]
ax.plot(accuracy, fid, "-", color="0.6", zorder=1)
points = ax.scatter(accuracy, fid, c=s_values, cmap="viridis", s=60, zorder=2)
label_offsets = {1.5: ((-6, -4), "right", "top")}     # s = 1.5 and s = 2 lie close together: s = 1.5's label goes below left
for s_, a_, f_ in zip(s_values, accuracy, fid):
    offset, ha, va = label_offsets.get(float(s_), ((6, 4), "left", "bottom"))
    ax.annotate(f"s={s_:g}", (a_, f_), textcoords="offset points", xytext=offset, ha=ha, va=va, fontsize=8)
ax.axhline(floor, color="0.5", linestyle="--")
ax.set_ylim(bottom=0)                                  # FID ≥ 0; leaves room for the labels under the lowest points
ax.set_xlabel("conditional accuracy (%)  (higher is better)")
ax.set_ylabel("classifier-FID  (lower is better)")
ax.set_title("the trade-off: FID against accuracy")
fig.colorbar(points, ax=ax, label="s")

ax = axes[1, 1]
per_class = 100 * np.array([r["per_class"] for r in results]).T             # (10 classes, scales)
heat = ax.imshow(per_class, cmap="viridis", vmin=0, vmax=100, aspect="auto")
ax.set_xticks(range(len(results)), [f"{s:g}" for s in s_values])
ax.set_yticks(range(10), classes, fontsize=8)
ax.set_xlabel("guidance scale s")
ax.set_title(f"accuracy per class (%), {MEASURE_N // 10} samples each")
for i in range(10):
    for j in range(len(results)):
        ax.text(j, i, f"{per_class[i, j]:.0f}", ha="center", va="center", fontsize=7,
                color="white" if per_class[i, j] < 60 else "black")
for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
    ax.grid(True, alpha=0.3)
fig.suptitle(f"classifier-free guidance, measured: N={MEASURE_N} per scale, DDIM-{MEASURE_STEPS}", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Reading the trade-off.** The numbers are in the table and plots above (they depend on the
# checkpoint and on $N$); what to look for, why, and what the stored full-size run ($N = 200$ per
# scale, DDIM-20) shows:
#
# * **Accuracy rises with $s$**: guidance pushes every step towards images the model's implicit
#   classifier is sure about, and the evaluation classifier mostly agrees with it. At $s = 0$ the
#   accuracy is near chance (10%), since the labels are ignored. Stored run: 11.0% at $s = 0$, then
#   84.0%, 94.5%, 98.0%, 100.0% and 100.0% at $s = 1, 1.5, 2, 3, 5$ (the table names $s = 3$ as the
#   highest because it is the first of the two at 100%). The per-class panel shows which classes need
#   guidance most. In Fashion-MNIST these are usually the upper-body garments (shirt, T-shirt,
#   pullover, coat), and so it is here: at $s = 1$ the weakest are shirt (40%), coat (70%), T-shirt and
#   pullover (80% each) and dress (85%), while trouser, bag and ankle boot are at 100%; at $s = 2$ only
#   shirt (90%), T-shirt and pullover (95% each) are short of 100%, and from $s = 3$ on every class is
#   at 100%. Each cell has only 20 samples, so it moves in steps of 5 points and, away from 0 and 100%,
#   has a random error of about ±10.
# * **FID improves while guidance repairs more than it harms.** A wrong-class or malformed sample
#   is far from the test distribution, and guidance removes many of those, so FID falls at first.
#   But $p(x_t)\,p(c \mid x_t)^s$ with a large $s$ concentrates on the most typical members of each
#   class: the samples become alike and contrasty, and FID, which compares whole distributions,
#   eventually charges for the lost diversity and rises again. In the paper this U-shape is the
#   central finding (their Tables 1 and 2, ImageNet 64×64 and 128×128: the best FID at small $w$,
#   0.1 to 0.3, the best Inception Score at the largest $w$).
# * **This run shows the turn.** Classifier-FID is 5.74 at $s = 0$ (unconditional), 1.34 at $s = 1$,
#   0.73 at $s = 1.5$ and 0.94 at $s = 2$, then rises to 1.77 at $s = 3$ and 3.36 at $s = 5$ (floor
#   0.77). The lowest FID is at $s = 1.5$ ($w = 0.5$), the smallest guided scale swept, while accuracy
#   goes on rising to 100% at $s = 3$: the paper's pattern, the best FID at a small $w$ and the
#   closest class match at a large one. Past $s = 3$ accuracy has nowhere left to go and guidance only
#   costs: from $s = 3$ to $s = 5$ the FID almost doubles at the same 100% (the vertical end of the
#   trade-off panel). The U-shape is far larger than the noise at $N = 200$ (the rise from 0.94 to
#   3.36 is about three times the floor); its exact bottom is not. 0.73 and 0.94 both lie close to the
#   floor, and $s = 1.5$ scoring slightly *below* it only says that at this $N$ these samples are as
#   close to the test set as real training images are (the floor is itself a noisy estimate from $N$
#   images), not that they are better than real. To find where between $s = 1$ and $s = 2$ the minimum lies, add
#   scales such as 1.25 and 1.75 to `SCALES` (each guided scale adds about a fifth to this cell's
#   time) and raise $N$. The FID features come from a classifier trained to give every boot the same
#   answer, so they see less of the within-class variety than Inception features on ImageNet do; they
#   still see a cost at large $s$, where both the loss of variety and the over-bright, saturated
#   samples of §4 move the feature statistics away from the test set's (this measurement does not
#   separate the two).
# * **The time column** shows the price of guidance. At $s = 0$ and $s = 1$ each step is one UNet
#   evaluation per image; at every other $s$ it is two, the conditional and the unconditional one,
#   which `guided_model_output` (called by `sample`) runs as **one batch of $2N$** images. Divide a
#   guided row's time by the $s = 1$ row's to read the price on this machine. The work is twice as
#   much; the time can come out below twice (on a CPU whose cores a batch of $N$ does not yet keep
#   busy, the doubled batch uses them better) or above (a machine busy with other jobs, or a doubled
#   batch that no longer fits the caches): the table says which happened here.
# * **How much to trust it**: with $N$ = a few hundred, FID has a large bias and a noticeable
#   random error; compare each FID with the floor, and compare scales with each other (same noise,
#   same $N$) rather than with published numbers. The classifier that measures accuracy is not the
#   one that guides (the guide is implicit in the diffusion model), so high accuracy is not just a
#   classifier being fooled, but it is still one small CNN's opinion. It scores 92.75% on the real
#   test images (`checkpoints/README.md`) and 100% on the samples at $s \ge 3$: strongly guided
#   samples are easier for it than real ones, as expected if guidance picks the typical, unambiguous
#   members of each class. And §6 shows it calling every Shirt sample at $s = 3$ a shirt, including
#   a few with a blotchy, high-contrast pattern.
#
# ## 6. The guidance explorer
#
# The explorer samples a grid of one class from one fixed noise, at the guidance scale you pick,
# and the caption says how many of the samples the classifier recognises. Samples it puts in another
# class get a red frame. The static version first: the class Shirt, usually the hardest in
# Fashion-MNIST (in §5 it is the weakest at $s = 1$, 40%, and at $s = 2$, 90%, and reaches 100% at
# $s = 3$), at four scales, drawn with the explorer's own pure functions, `guidance_state` and
# `plot_guidance_state` (in `ddpm_teach.widgets`).

# %%
ddpm_teach.course.section("6. The guidance explorer")
# NBVAL_IGNORE_OUTPUT
shirt = classes.index("Shirt")
explorer_x_T = torch.randn(EXPLORER_N, 1, 28, 28, generator=torch.Generator().manual_seed(0))
static_scales = (0.0, 1.0, 3.0, 6.0)
with timed(f"{len(static_scales)} grids of {EXPLORER_N}, DDIM-{EXPLORER_STEPS}"):
    states = [guidance_state(model, schedule, explorer_x_T, shirt, s, steps=EXPLORER_STEPS, classifier=classifier,
                             class_names=classes) for s in static_scales]
for state in states:
    print(state["caption"])

# %%
fig, axes = plt.subplots(1, len(states), figsize=(3.1 * len(states), 3.8))
for ax, state in zip(axes, states):
    plot_guidance_state(state, ax=ax)          # red frame: the classifier sees another class
fig.suptitle(f"class {classes[shirt]!r}, the same noise in every panel, DDIM-{EXPLORER_STEPS}", fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.95))
plt.show()

# %% [markdown]
# Now interactively. `GuidanceExplorer` (in `ddpm_teach.widgets`) has a class menu, the guidance
# scale $s$ from 0 to 6, and the number of DDIM steps. Each new setting is sampled once (the four
# static grids above, 16 samples at DDIM-10, take a few seconds in all on a CPU: the printout above
# says how long they took here; a guided step costs two UNet evaluations per image) and cached, so
# going back is instant.
#
# In the stored run the classifier calls 3, 12, 16 and 16 of the 16 static samples "Shirt" at
# $s = 0, 1, 3, 6$. At $s = 0$ the grid is a mix (sandals, sneakers, trousers, a bag, tops); at
# $s = 1$ all 16 are tops, and the classifier puts four of them in another class; at $s = 3$ all 16
# are shirts, and $s = 6$ adds nothing measurable: its panel looks almost the same as $s = 3$'s. Four
# samples are mottled or blotchy at $s = 1$, 3 and 6 alike (three of them with a high-contrast
# pattern), and the classifier counts them as shirts too, so 16 of 16 says the class is right, not
# that every sample looks clean.
#
# Things to try:
#
# 1. Shirt: move $s$ from 0 to 6 and watch the caption's accuracy and the red frames.
# 2. Trouser or Bag (easy classes): already right at $s = 1$; what does more guidance add?
# 3. Any class at $s = 6$: how alike do the samples become?
# 4. 5 DDIM steps against 20: does guidance need many steps?
#
# The widget needs a live kernel (JupyterLab, Jupyter Notebook, VS Code or Colab). On a static page
# such as GitHub it does not render; the cell then shows a still picture of its first setting (Shirt
# at $s = 3$, the same grid as the $s = 3$ panel above), and the figures above show the rest.

# %%
# NBVAL_IGNORE_OUTPUT
# (without a live kernel, e.g. on GitHub, you see a still picture of the explorer's first setting)
explorer = GuidanceExplorer(model, schedule, classifier=classifier, class_names=classes, n=EXPLORER_N,
                            steps=EXPLORER_STEPS, label=shirt, guidance_scale=3.0)
explorer

# %% [markdown]
# ## 7. Exercises
#
# **Exercise 1 (conventions).** A paper reports its samples "with guidance strength $w = 2$" in the
# form $(1 + w)\,\varepsilon_c - w\,\varepsilon_u$. Which `guidance_scale` $s$ do you pass to
# `ddpm_teach.samplers.sample` to get the same? Check with
# `ddpm_teach.exercises.nb07.check_scale_from_w(s)`.
#
# **Exercise 2 (the guided prediction by hand).** `eps_u, eps_c = ddpm_teach.exercises.nb07.exercise_eps()`
# gives two small tensors. Compute $\tilde\varepsilon$ at $s = 3$ and check it with
# `ddpm_teach.exercises.nb07.check_guided_eps(answer)`.
#
# **Exercise 3 (cost).** How many UNet evaluations in total, summed over the four scales (one per
# image per forward pass, so a forward pass on a batch of 100 images counts 100), does sampling 100
# images with DDIM-25 at each of the guidance scales $s = 0, 1, 2, 3$ take, using
# `guided_model_output`? Check with
# `ddpm_teach.exercises.nb07.check_model_evaluations(count)`.
#
# Try them in the next cell; a worked solution to each is in **Solutions** at the end of the notebook
# (hidden; click to show).

# %%
ddpm_teach.course.section("7. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb07.check_scale_from_w(...)
# eps_u, eps_c = ddpm_teach.exercises.nb07.exercise_eps()
# ddpm_teach.exercises.nb07.check_guided_eps(...)
# ddpm_teach.exercises.nb07.check_model_evaluations(...)

# %% [markdown]
# ## Summary
#
# * A class-conditional UNet adds a label embedding $E[y]$ to its time embedding; the table has one
#   extra row, the **null label** $\varnothing$ (index `num_classes`), which makes the same network an
#   unconditional model.
# * **Label dropout** (Ho & Salimans, Algorithm 1) is the only change to training: replace the label
#   by $\varnothing$ with probability $p_\text{uncond}$ (0.1 here).
# * **Guidance** combines the two predictions, $\tilde\varepsilon = \varepsilon_u + s(\varepsilon_c -
#   \varepsilon_u)$ (`guided_model_output`), which is the paper's eq. 6,
#   $(1+w)\varepsilon_c - w\varepsilon_u$, with $w = s - 1$. $s = 0$ is unconditional, $s = 1$ plain
#   conditional, $s > 1$ guided. It follows the gradient of $\log p(x_t) + s \log p(c \mid x_t)$ with
#   the classifier implicit in the diffusion model, and costs two UNet evaluations per step.
# * The trade-off, as the paper measured it: as $s$ grows, conditional accuracy rises while the
#   samples of a class become more alike. Classifier-FID improves while guidance repairs more samples
#   than it over-sharpens, and worsens after that; where it turns depends on the model and on the
#   features. The small shipped model shows the same pattern ($N = 200$, DDIM-20): FID fell from 1.34
#   at $s = 1$ to 0.73 at $s = 1.5$, at the real-vs-real floor (0.77), and rose again to 3.36 at
#   $s = 5$, while accuracy rose from 84.0% at $s = 1$ to 100% at $s = 3$ and 5. Report every FID with
#   its $N$ and the real-vs-real floor.
# * `GuidanceExplorer` shows it class by class; `guidance_state` is the same logic as a plain,
#   tested function.
#
# **Further reading.** Dhariwal & Nichol 2021, *Diffusion Models Beat GANs on Image Synthesis*
# ([arXiv:2105.05233](https://arxiv.org/abs/2105.05233)), introduced classifier guidance with a
# separately trained noisy-image classifier. Kynkäänniemi et al. 2024, *Applying Guidance in a
# Limited Interval Improves Sample and Distribution Quality*
# ([arXiv:2404.07724](https://arxiv.org/abs/2404.07724)), guide only at middle noise levels: at the
# highest, guidance mostly costs diversity; at the lowest (§3's curve) it has little left to change.
#
# **Next:** notebook 08 lets the model learn its own reverse variance (Improved DDPM), which helps
# most when sampling in few steps.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of §7. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# s·ε_c − (s − 1)·ε_u = (1 + w)·ε_c − w·ε_u, so s = w + 1.
w_paper = 2.0
ddpm_teach.exercises.nb07.check_scale_from_w(w_paper + 1)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# Start from ε_u and go s times the difference towards ε_c.
eps_u, eps_c = ddpm_teach.exercises.nb07.exercise_eps()
ddpm_teach.exercises.nb07.check_guided_eps(eps_u + 3.0 * (eps_c - eps_u))

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
# s = 0 and s = 1 need one pass per step, s = 2 and s = 3 two.
passes = {0.0: 1, 1.0: 1, 2.0: 2, 3.0: 2}
ddpm_teach.exercises.nb07.check_model_evaluations(sum(100 * 25 * p for p in passes.values()))

# %% [markdown]
# ## Run time on your machine
#
# The cell below prints how long each section of this notebook took to run here, on this machine and
# at this size; compare it with the runtime note at the top. The printed total covers the timed sections
# only; the runtime note also counts starting the kernel and importing torch and the course:
# typically 5-15 s more, and runs vary with the machine's load.

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section_times()

# %% [markdown]
# ← [06 · DDIM sampling](06_ddim_sampling.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [08 · Learned variance →](08_learned_variance.ipynb)
