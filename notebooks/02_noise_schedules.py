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
# # 02 · Noise schedules
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/02_noise_schedules.ipynb)
#
# ← [01 · The forward process and its closed form](01_forward_process.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [03 · The UNet →](03_unet.ipynb)
#
# Notebook 01 built the forward process from a sequence $\beta_1, \dots, \beta_T$ and took it as
# given. This notebook is about that sequence, the **noise schedule**: how fast the forward
# process destroys an image, step by step. It is a design choice, not something the model learns,
# and a poor choice costs sample quality that no amount of training wins back.
#
# **Learning goals.** By the end you can
# 1. write down the four schedules of `ddpm_teach.schedules`: linear (DDPM), cosine (Improved DDPM,
#    eq. 17), quadratic and sigmoid; and compute $\bar\alpha_t$, the signal-to-noise ratio SNR$(t)$
#    and log-SNR from any of them;
# 2. read the $\beta$, $\bar\alpha$, SNR and log-SNR curves, and see on a real Fashion-MNIST image
#    what each schedule does at the same $t$;
# 3. explain why keeping the linear schedule's $\beta$ from $10^{-4}$ to $0.02$ while shrinking $T$
#    (1000 → 100 → 50) leaves $x_T$ far from $\mathcal N(0, I)$, say how far (in numbers and in
#    pictures), and fix it by scaling the betas by $1000/T$;
# 4. explain why the cosine schedule's betas are capped at 0.999: without the cap $\beta_T = 1$
#    for every $T$, and the reverse process divides by zero;
# 5. explore all of this with an interactive widget, after the static figures.
#
# **Runtime** (whole notebook, full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-11-22): 9 s
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-02, 12-07): 12-18 s (three runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): about 10 s (AMD) · GPU: not measured
#
# Most of it is starting the kernel, importing and drawing figures. Slower on a CPU with fewer cores or
# on a busy machine; the last cell prints this run's time per section.

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
# The course's size knob is the environment variable `DDPM_TEACH_SIZE`: `full` (the default) or
# `ci` (what `pytest --nbval` runs). This notebook has nothing to shrink: schedules are a few
# thousand numbers, so every cell does the same work, and prints the same numbers, at both sizes.

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports")        # times each section of this notebook; the last cell prints the times
import math

import matplotlib.pyplot as plt
import torch

import ddpm_teach.exercises.nb02
from ddpm_teach.course import timed
from ddpm_teach.data import load_dataset
from ddpm_teach.forward import q_mean_variance, q_sample
from ddpm_teach.losses import normal_kl
from ddpm_teach.plotting import plot_schedules, show_images
from ddpm_teach.schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas
from ddpm_teach.widgets import ScheduleExplorer, explorer_state

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" or "ci"; nothing below depends on it

# %% [markdown]
# ## 1. What a schedule fixes: $\beta_t$, $\bar\alpha_t$ and the SNR
#
# Recall from notebook 01 (DDPM, Ho et al. 2020, [arXiv:2006.11239](https://arxiv.org/abs/2006.11239)):
# step $t$ of the forward process scales the image down a little and adds noise of variance $\beta_t$,
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big) \qquad \text{(eq. 2)},$$
#
# and with $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s=1}^{t} \alpha_s$ the $t$ steps
# collapse into one:
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big), \qquad
# x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon \qquad \text{(eq. 4)}.$$
#
# So the whole schedule reaches the model only through $\bar\alpha_t$: the share of $x_t$'s
# variance that is still signal. The cleanest single number for "how noisy is $x_t$" is the
# **signal-to-noise ratio** (as in Kingma et al. 2021, *Variational Diffusion Models*,
# [arXiv:2107.00630](https://arxiv.org/abs/2107.00630)),
#
# $$\mathrm{SNR}(t) = \frac{\bar\alpha_t}{1-\bar\alpha_t}, \qquad \lambda(t) = \log \mathrm{SNR}(t)\ \ \text{(log-SNR)}.$$
#
# A good schedule has $\bar\alpha$ close to 1 at the first step (the first step barely touches
# the data), close to 0 at the last (sampling starts from pure noise $x_T \sim \mathcal N(0, I)$,
# so training's $x_T$ had better look like that), and in between spends its steps where there is
# something left to learn.
#
# **Index convention** (as everywhere in `ddpm_teach`): timesteps are 0-based indices
# $t \in [0, T)$; index 0 is the paper's $t = 1$ and `betas[t]` is the paper's $\beta_{t+1}$. So
# the paper's $\beta_T$, $\bar\alpha_T$ live at index `T - 1`, i.e. `[-1]`.
#
# ### The four schedules
#
# | name | definition | source |
# |---|---|---|
# | `linear` | $\beta_t$ rises linearly from $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$, $T = 1000$ | DDPM §4 |
# | `quadratic` | $\sqrt{\beta_t}$ rises linearly between the same end points | DDPM's code (`"quad"`) |
# | `sigmoid` | $\beta_t$ follows a sigmoid over $[-6, 6]$, rescaled to the same end points | common in open-source code |
# | `cosine` | $\bar\alpha_t = f(t)/f(0)$, $f(t) = \cos^2\!\big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\big)$, $s = 0.008$; $\beta_t = 1 - \bar\alpha_t/\bar\alpha_{t-1}$, capped at 0.999 | Improved DDPM, eq. 17 and §3.2 |
#
# The cosine schedule (Nichol & Dhariwal 2021, [arXiv:2102.09672](https://arxiv.org/abs/2102.09672))
# is the odd one out: it specifies $\bar\alpha_t$ directly and derives the betas from it. The small
# offset $s$ keeps $\beta_1$ from being vanishingly small near $t = 0$ (their §3.2).
#
# Here is eq. 17 written out one timestep at a time, as a teaching version; it must agree with the
# package's `make_betas("cosine", T)`, which the rest of the notebook uses.

# %%
ddpm_teach.course.section("1. What a schedule fixes")


def cosine_betas_by_hand(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved DDPM eq. 17 in plain Python floats: ᾱ(t) = f(t)/f(0), β_t = min(1 − ᾱ(t)/ᾱ(t−1), max_beta)."""
    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    alpha_bar = [f(t) / f(0) for t in range(T + 1)]                       # ᾱ(0) = 1, ..., ᾱ(T)
    return torch.tensor([min(1 - alpha_bar[t] / alpha_bar[t - 1], max_beta) for t in range(1, T + 1)],
                        dtype=torch.float64)                               # [T]: the paper's β_1..β_T


for T in (10, 1000, 4000):
    torch.testing.assert_close(cosine_betas_by_hand(T), make_betas("cosine", T))
print("cosine_betas_by_hand matches make_betas('cosine', T) for T = 10, 1000, 4000")

# ᾱ_t is the running product of 1 − β (eq. 4), and SNR follows from it
T = 1000
schedules = {kind: NoiseSchedule.from_name(kind, T) for kind in SCHEDULE_KINDS}
for kind, schedule in schedules.items():
    alpha_bar = torch.cumprod(1 - make_betas(kind, T), dim=0)
    torch.testing.assert_close(schedule.alphas_cumprod, alpha_bar)
    torch.testing.assert_close(schedule.snr, alpha_bar / (1 - alpha_bar))
print("NoiseSchedule.alphas_cumprod = cumprod(1 − β) and .snr = ᾱ / (1 − ᾱ) for all four kinds")

# %% [markdown]
# The four schedules at $T = 1000$, in numbers (0-based indices in brackets):

# %%
print(f"{'schedule':<10}{'β_1':>10}{'β_T':>10}{'ᾱ[250]':>10}{'ᾱ[500]':>10}{'ᾱ[750]':>10}{'ᾱ_T':>11}{'SNR(T)':>11}")
for kind, schedule in schedules.items():
    b, ab = schedule.betas, schedule.alphas_cumprod
    print(f"{kind:<10}{b[0]:>10.2e}{b[-1]:>10.4f}{ab[250]:>10.4f}{ab[500]:>10.4f}{ab[750]:>10.4f}"
          f"{ab[-1]:>11.2e}{schedule.snr[-1]:>11.2e}")

print("\nshare of the T steps at which x_t is almost pure noise (SNR < 0.01, i.e. √ᾱ_t below about 0.1):")
for kind, schedule in schedules.items():
    print(f"  {kind:<10}{(schedule.snr < 0.01).double().mean():.1%}")

# %% [markdown]
# ## 2. The curves (static figure)
#
# `ddpm_teach.plotting.plot_schedules` draws any coefficient of a `NoiseSchedule`, one line per
# schedule. The $\beta$ and SNR panels have log axes; log-SNR is already a logarithm.

# %%
ddpm_teach.course.section("2. The curves")
fig, axes = plt.subplots(2, 2, figsize=(10, 7))
plot_schedules(schedules, quantities=("betas", "alphas_cumprod", "snr", "log_snr"), ax=axes)
fig.suptitle(f"Four noise schedules, T = {T}", y=1.02)
plt.show()

# %% [markdown]
# How to read it:
#
# * **$\bar\alpha_t$ (top right).** The linear schedule destroys the image fastest: $\bar\alpha$ is
#   below 0.01 from about $t = 670$ on, so a third of its steps (the table above) turn almost-noise
#   into noise. Improved DDPM (§3.2, their Fig. 4) found that a linear-schedule model hardly gets
#   worse when the first 20% of its reverse steps (the noisiest) are skipped: they were not doing
#   much.
#   The cosine schedule falls almost linearly in the middle and flattens at both ends, so its
#   steps are spread more evenly over the noise levels. Quadratic and sigmoid lie in between.
# * **$\beta_t$ (top left).** Linear, quadratic and sigmoid share their end points and differ only
#   in the route. Cosine's betas start lower and end at the 0.999 cap (section 5).
# * **SNR and log-SNR (bottom).** On a log scale the schedules are easiest to compare. For cosine
#   $\mathrm{SNR}(t) \approx \cot^2\big(\frac{t/T+s}{1+s}\frac{\pi}{2}\big)$, so its log-SNR falls
#   nearly linearly through the middle and plunges only at the very end. All four start near
#   $\log \mathrm{SNR} \approx 9$ to $10$ ($\bar\alpha_1 \approx 0.9999$) but end at very different
#   levels.
#
# ## 3. The same image, the same noise, four schedules
#
# Numbers are one thing; here is what they do to a real image. We load the Fashion-MNIST test set
# (offline from Debian's `dataset-fashion-mnist` package if it is installed, see `load_dataset`)
# and noise its first image with eq. 4, using **one** fixed $\varepsilon$ for every panel, so that
# only $\sqrt{\bar\alpha_t}$ and $\sqrt{1-\bar\alpha_t}$ change from panel to panel.

# %%
ddpm_teach.course.section("3. Four schedules, one image")
with timed("loading the Fashion-MNIST test set"):
    data = load_dataset("fashion_mnist", train=False)
print(data)
x0, label = data.batch([0])                         # x0: (1, 1, 28, 28) in [-1, 1]
print(f"image 0: a {data.classes[int(label)]!r}, shape {tuple(x0.shape)}, "
      f"values in [{x0.min():.0f}, {x0.max():.0f}]")

noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))   # one ε for every panel

# %%
ts = [0, 100, 250, 400, 500, 600, 750, 999]            # 0-based timesteps
fig, axes = plt.subplots(len(schedules), len(ts), figsize=(1.35 * len(ts), 1.55 * len(schedules)))
for row, (kind, schedule) in enumerate(schedules.items()):
    for col, t in enumerate(ts):
        x_t = q_sample(schedule, x0, t, noise)         # x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε   (eq. 4)
        show_images(x_t, nrow=1, ax=axes[row, col])
        axes[row, col].set_title(f"t={t}\n√ᾱ={schedule.sqrt_alphas_cumprod[t]:.2f}", fontsize=8)
    axes[row, 0].set_ylabel(kind, fontsize=10)
fig.suptitle("x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε, one ε for all panels (values outside [−1, 1] shown clipped)",
             fontsize=9)
fig.tight_layout()
plt.show()

print("√ᾱ_t, the amount of x_0 left in x_t:")
print(f"{'t':<10}" + "".join(f"{t:>7}" for t in ts))
for kind, schedule in schedules.items():
    print(f"{kind:<10}" + "".join(f"{schedule.sqrt_alphas_cumprod[t]:>7.3f}" for t in ts))

# %% [markdown]
# With the linear schedule the ankle boot is barely visible at $t = 500$ and gone from about
# $t = 600$; the remaining steps only shuffle noise. With cosine its outline survives past
# $t = 600$. Sigmoid keeps the image longest early on and then drops quickly, and quadratic is
# gentler than linear everywhere.
#
# ## 4. Shrinking $T$ with the linear schedule kept: $x_T$ is not noise any more
#
# Training with fewer steps is tempting: 1000 steps make sampling slow. The naive way keeps DDPM's
# betas from $10^{-4}$ to $0.02$ and just uses fewer of them (`make_betas("linear", T)` does exactly
# this, on purpose). Since $\log(1-\beta) \approx -\beta$ for small $\beta$,
#
# $$\bar\alpha_T = \prod_{t=1}^{T}(1-\beta_t) \approx \exp\Big(-\sum_{t=1}^{T}\beta_t\Big)
# = \exp\Big(-T\,\frac{\beta_1+\beta_T}{2}\Big) = e^{-0.01005\,T}.$$
#
# At $T = 1000$ that is $e^{-10} \approx 4\cdot10^{-5}$: essentially no signal left. At $T = 100$
# it is $e^{-1} \approx 0.37$: **60% of the image's amplitude** ($\sqrt{\bar\alpha_T}$) is still
# in $x_T$.
#
# Why that breaks a model: sampling (Algorithm 2) starts from $x_T \sim \mathcal N(0, I)$, but
# during training the model only ever saw $x_T = \sqrt{\bar\alpha_T}\,x_0 + \sqrt{1-\bar\alpha_T}\,\varepsilon$.
# At $T = 100$ those two are very different distributions, so the reverse chain starts somewhere it
# was never trained. DDPM's variational bound (eq. 5) measures the gap in its first term,
#
# $$L_T = D_{\mathrm{KL}}\big(q(x_T \mid x_0)\ \|\ \mathcal N(0, I)\big)
# = \tfrac12\big(\bar\alpha_T x_0^2 + (1-\bar\alpha_T) - 1 - \log(1-\bar\alpha_T)\big) \text{ per pixel},$$
#
# a constant that no training can reduce. Below it is averaged over all 10,000 test images and
# reported in bits per dimension (with `ddpm_teach.losses.normal_kl`).

# %%
ddpm_teach.course.section("4. Shrinking T")
x_test = data.batch(torch.arange(len(data)))[0].double()   # (10000, 1, 28, 28) in [-1, 1]


def prior_bits_per_dim(schedule: NoiseSchedule, x0: torch.Tensor) -> float:
    """L_T of DDPM eq. 5: KL(q(x_T | x_0) ‖ N(0, I)), averaged over pixels and images, in bits/dim."""
    mean, variance = q_mean_variance(schedule, x0, schedule.T - 1)      # √ᾱ_T x_0 and 1 − ᾱ_T
    zero = torch.zeros((), dtype=x0.dtype)
    return normal_kl(mean, variance.log(), zero, zero).mean().item() / math.log(2)


Ts = [1000, 500, 250, 100, 50]
lines = ["linear schedule, β from 1e-4 to 0.02 whatever T is (make_betas('linear', T)):",
         f"{'T':>6}{'ᾱ_T':>11}{'√ᾱ_T':>8}{'SNR(T)':>11}{'exp(−Σβ)':>11}{'L_T bits/dim':>14}"]
for T in Ts:
    kept = NoiseSchedule.from_name("linear", T)
    lines.append(f"{T:>6}{kept.alphas_cumprod[-1]:>11.3e}{kept.sqrt_alphas_cumprod[-1]:>8.3f}{kept.snr[-1]:>11.3e}"
                 f"{math.exp(-kept.betas.sum()):>11.3e}{prior_bits_per_dim(kept, x_test):>14.2e}")
print("\n".join(lines))

# %% [markdown]
# In pictures: $x_T$ (index `T - 1`) of the same boot with the same $\varepsilon$, for each $T$. The
# top row keeps the betas; the bottom row uses the fix explained next. The last column is
# $\varepsilon$ itself, a sample of $\mathcal N(0, I)$: what sampling starts from.

# %%
noise_T = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
rows = {
    "β: 1e-4 → 0.02\n(kept)": lambda T: NoiseSchedule.from_name("linear", T),
    "β × 1000/T\n(rescaled)": lambda T: NoiseSchedule.from_name("linear", T, beta_start=0.1 / T, beta_end=20 / T),
}
fig, axes = plt.subplots(2, len(Ts) + 1, figsize=(1.6 * (len(Ts) + 1), 4.3))
for row, (row_name, build) in enumerate(rows.items()):
    for col, T in enumerate(Ts):
        schedule = build(T)
        x_T = q_sample(schedule, x0, T - 1, noise_T)
        show_images(x_T, nrow=1, ax=axes[row, col])
        axes[row, col].set_title(f"T={T}\n√ᾱ_T={schedule.sqrt_alphas_cumprod[-1]:.3f}", fontsize=8)
    axes[row, 0].set_ylabel(row_name, fontsize=8)
    show_images(noise_T, nrow=1, ax=axes[row, -1])
    axes[row, -1].set_title("ε ~ N(0, I)\n(sampling starts here)", fontsize=8)
fig.suptitle("x_T = √ᾱ_T·x_0 + √(1 − ᾱ_T)·ε for the linear schedule", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The fix: scale the betas with $T$
#
# $\bar\alpha_T \approx e^{-\sum\beta}$ depends on the *sum* of the betas, so keep the sum: scale
# both end points by $1000/T$, i.e. $\beta_1 = 0.1/T$ and $\beta_T = 20/T$. The sum stays
# $\approx 10$, so $\bar\alpha_T \approx e^{-10}$ for large $T$ (less still for small $T$, where the
# large last betas make $\log(1-\beta) \approx -\beta$ an underestimate). This is what
# openai/improved-diffusion does for its `"linear"` schedule (`get_named_beta_schedule`). It works
# while $\beta_T = 20/T < 1$, i.e. $T > 20$; for shorter chains use the cosine schedule, which is
# defined through $\bar\alpha$ and reaches (almost) 0 at any $T$. The other way to sample in fewer
# steps, keeping $T = 1000$ for training and skipping steps when sampling, is DDIM (notebook 06).

# %%
lines = ["linear schedule, β × 1000/T (β_1 = 0.1/T, β_T = 20/T), and cosine for comparison:",
         f"{'T':>6}{'β_T':>7}{'ᾱ_T':>11}{'√ᾱ_T':>8}{'SNR(T)':>11}{'L_T bits/dim':>14}{'cosine ᾱ_T':>13}"]
for T in Ts:
    scaled = NoiseSchedule.from_name("linear", T, beta_start=0.1 / T, beta_end=20 / T)
    cosine = NoiseSchedule.from_name("cosine", T)
    lines.append(f"{T:>6}{scaled.betas[-1]:>7.2f}{scaled.alphas_cumprod[-1]:>11.3e}"
                 f"{scaled.sqrt_alphas_cumprod[-1]:>8.4f}{scaled.snr[-1]:>11.3e}"
                 f"{prior_bits_per_dim(scaled, x_test):>14.2e}{cosine.alphas_cumprod[-1]:>13.3e}")
print("\n".join(lines))

# %% [markdown]
# On a common axis $t/T$ the rescaled schedules (right) all trace the $T = 1000$ curve, while the
# kept ones (left) stop before the signal is gone:

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
plot_schedules({f"T={T}": NoiseSchedule.from_name("linear", T) for T in Ts},
               quantities="alphas_cumprod", ax=axes[0], relative_t=True)
plot_schedules({f"T={T}": NoiseSchedule.from_name("linear", T, beta_start=0.1 / T, beta_end=20 / T) for T in Ts},
               quantities="alphas_cumprod", ax=axes[1], relative_t=True)
axes[0].set_title("linear, β from 1e-4 to 0.02 (kept)")
axes[1].set_title("linear, β × 1000/T (rescaled)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Why the cosine betas are capped at 0.999
#
# Eq. 17 ends exactly at zero: $f(T) = \cos^2\big(\frac{1+s}{1+s}\cdot\frac{\pi}{2}\big) = \cos^2(\pi/2) = 0$,
# so $\bar\alpha_T = 0$ and
#
# $$\beta_T = 1 - \frac{\bar\alpha_T}{\bar\alpha_{T-1}} = 1 .$$
#
# A bigger $T$ does not help. Near the end $f(t) \approx \big(\frac{\pi}{2}\cdot\frac{T-t}{T(1+s)}\big)^2$,
# so the ratio $\bar\alpha_t/\bar\alpha_{t-1} \approx \big(\frac{T-t}{T-t+1}\big)^2$ depends only on
# how many steps are left. Number the steps from the end, $k = T - t + 1$ ($k = 1$ is the last
# step, index `T - 1`): $\beta \to 1 - \big(\frac{k-1}{k}\big)^2 = 1,\ 0.75,\ 0.56,\ 0.44,\ 0.36$
# for $k = 1, \dots, 5$, **at every $T$**. The typical beta shrinks like $1/T$ as $T$ grows, but the last few stay large:
# they sample the continuous-time rate $\beta(t) \propto \tan\big(\frac{t/T+s}{1+s}\frac{\pi}{2}\big)$,
# which is infinite at $t = T$. Improved DDPM therefore clips $\beta_t$ to at most 0.999 "to prevent
# singularities at the end of the diffusion process near $t = T$" (§3.2). `make_betas` takes the cap
# as `max_beta`; `max_beta=1.0` switches it off.

# %%
ddpm_teach.course.section("5. The cosine cap")
print("cosine schedule: the last five betas (indices T−5 … T−1) and the median beta")
for T in (50, 100, 1000, 4000):
    raw = make_betas("cosine", T, max_beta=1.0)        # no cap
    capped = make_betas("cosine", T)                   # capped at 0.999, the default
    print(f"T={T:>4}  no cap: [{', '.join(f'{b:.4f}' for b in raw[-5:])}]  "
          f"capped: [{', '.join(f'{b:.4f}' for b in capped[-5:])}]  "
          f"steps capped: {int((raw > 0.999).sum())}  median β: {capped.median():.2e}")

# %% [markdown]
# What $\beta_T = 1$ breaks. The last forward step keeps $\sqrt{1-\beta_T} = 0$ of $x_{T-1}$, so
# $\bar\alpha_T = 0$ exactly and everything the reverse process divides by is zero:
#
# * the reverse mean $\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta\big)$ (DDPM eq. 11) needs $1/\sqrt{\alpha_T}$;
# * the predicted clean image $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$ (eq. 15) needs $1/\sqrt{\bar\alpha_T}$;
# * $\log \mathrm{SNR}(T) = -\infty$.
#
# The package's `NoiseSchedule` refuses such betas outright:

# %%
T = 1000
raw = make_betas("cosine", T, max_beta=1.0)
raw_alpha_bar = torch.cumprod(1 - raw, dim=0)
capped = NoiseSchedule.from_name("cosine", T)
print(f"{'':<8}{'β_T':>8}{'√α_T':>9}{'1/√α_T':>9}{'ᾱ_T':>11}{'1/√ᾱ_T':>11}{'log SNR(T)':>12}")
print(f"{'no cap':<8}{raw[-1]:>8.4f}{(1 - raw[-1]).sqrt():>9.4f}{(1 - raw[-1]).rsqrt():>9.4g}"
      f"{raw_alpha_bar[-1]:>11.3g}{raw_alpha_bar[-1].rsqrt():>11.4g}{(raw_alpha_bar[-1] / (1 - raw_alpha_bar[-1])).log():>12.4g}")
print(f"{'capped':<8}{capped.betas[-1]:>8.4f}{capped.alphas[-1].sqrt():>9.4f}{capped.alphas[-1].rsqrt():>9.4g}"
      f"{capped.alphas_cumprod[-1]:>11.3g}{capped.sqrt_recip_alphas_cumprod[-1]:>11.4g}{capped.log_snr[-1]:>12.4g}")

try:
    NoiseSchedule(raw)
except ValueError as error:
    print(f"\nNoiseSchedule(uncapped betas) -> ValueError: {error}")

# %% [markdown]
# With the cap every coefficient is finite; $1/\sqrt{\alpha_T} \approx 32$ is large, but it
# multiplies an $x_T$ that is pure noise, and the model's $\varepsilon$-prediction there is nearly
# exact. The figure shows the spike: betas shrink with $T$ everywhere except at the end (left), and
# counted in steps before the end the last betas are the same for every $T$ (right).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for T in (100, 1000, 4000):
    raw = make_betas("cosine", T, max_beta=1.0)
    axes[0].plot((torch.arange(T) / T).numpy(), raw.numpy(), label=f"T={T}")
    k = torch.arange(1, 21)                                      # steps before the end: k = 1 is the last step
    axes[1].plot(k.numpy(), raw[T - k].numpy(), "o-", markersize=3, label=f"T={T}")
k = torch.arange(1, 21, dtype=torch.float64)
axes[1].plot(k.numpy(), (1 - ((k - 1) / k) ** 2).numpy(), "k:", label="1 − ((k−1)/k)²")
for ax in axes:
    ax.axhline(0.999, color="C3", linestyle="--", linewidth=1, label="cap 0.999")
    ax.set_yscale("log")
    ax.set_ylabel("β (no cap)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
axes[0].set_xlabel("t / T")
axes[0].set_title("cosine betas, no cap")
axes[1].set_xlabel("k = steps before the end (k = 1: the last step, index T − 1)")
axes[1].set_xscale("log")
axes[1].set_title("the last 20 betas: the same for every T")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. The schedule explorer
#
# Now the same things interactively. `ScheduleExplorer` (in `ddpm_teach.widgets`) shows
# $\bar\alpha_t$ and SNR$(t)$ against $t/T$, with a marker at $t$ (the grey dashed line is DDPM's
# linear schedule, $T = 1000$), and $x_0$, $x_t$ and $\varepsilon$ for our boot. The caption states
# the numbers. It redraws when you release a slider; the slider for $t$ follows $T$.
#
# Things to try:
# 1. linear, $T = 1000$: drag $t$. The boot is barely visible at $t \approx 500$, gone by about 600, and the caption's
#    coefficient of $x_0$ (that is, $\sqrt{\bar\alpha_t}$) is below 0.1 from $t \approx 670$ on.
# 2. Set $T = 100$, then $t = 99$: $x_T$ still shows the boot, $\sqrt{\bar\alpha_T} = 0.60$ (section 4).
# 3. Keep $T = 100$ and apply the fix: $\beta_\text{start} = 10^{-3}$, $\beta_\text{end} = 0.2$.
# 4. Switch to cosine: the $\beta$ sliders grey out (it has no end points), and $\bar\alpha$
#    reaches almost 0 at any $T$, even $T = 10$.
#
# The widget needs a live kernel (JupyterLab, Jupyter Notebook, VS Code or Colab). On a static
# page such as GitHub you see a picture of its starting state instead (the explorer carries one
# for viewers that cannot run it), and the figures above show the same things.

# %%
# NBVAL_IGNORE_OUTPUT
ddpm_teach.course.section("6. The schedule explorer")
explorer = ScheduleExplorer(image=x0)
explorer

# %% [markdown]
# The explorer's numbers come from a plain function, `explorer_state`, so they can be checked
# without a browser (and are, in `tests/test_widgets.py`). The settings from the list above:

# %%
for kind, T, beta_start, beta_end, t in [("linear", 1000, 1e-4, 0.02, 999), ("linear", 100, 1e-4, 0.02, 99),
                                         ("linear", 100, 1e-3, 0.2, 99), ("cosine", 10, None, None, 9)]:
    print(explorer_state(kind, T, beta_start, beta_end, t)["caption"])

# %% [markdown]
# ## 7. Exercises
#
# **Exercise 1.** What is $\bar\alpha_T$ of the linear schedule with $\beta$ from $10^{-4}$ to $0.02$
# (not rescaled) at $T = 100$? Three significant digits are enough. Check it with
# `ddpm_teach.exercises.nb02.check_alpha_bar_T(your_answer)`.
#
# **Exercise 2.** Which is the **smallest** $T$ for which that linear schedule (end points kept,
# as `make_betas("linear", T)` does) ends with $\mathrm{SNR}(T) < 10^{-4}$? Check it with
# `ddpm_teach.exercises.nb02.check_smallest_T(your_answer)`. Hint: the estimate
# $e^{-0.01005\,T}$ from section 4 gets you close, but not exactly there.
#
# Try them in the next cell; worked solutions are in **Solutions** at the end of the notebook (hidden; click to show).

# %%
ddpm_teach.course.section("7. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb02.check_alpha_bar_T(...)
# ddpm_teach.exercises.nb02.check_smallest_T(...)

# %% [markdown]
# ## Summary
#
# * A noise schedule is the sequence $\beta_1..\beta_T$; the model sees it only through
#   $\bar\alpha_t = \prod_s (1-\beta_s)$, in $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$
#   (eq. 4). SNR$(t) = \bar\alpha_t/(1-\bar\alpha_t)$ and its logarithm are the clearest ways to
#   compare schedules.
# * `make_betas(kind, T)` / `NoiseSchedule.from_name(kind, T)` give linear (DDPM), cosine
#   (Improved DDPM eq. 17), quadratic and sigmoid. Linear spends about a third of its 1000 steps
#   on near-pure noise; cosine spreads its noise levels more evenly.
# * $\bar\alpha_T \approx \exp(-\sum_t\beta_t)$. Keeping DDPM's betas while shrinking $T$ leaves
#   signal in $x_T$ ($\sqrt{\bar\alpha_T} = 0.60$ at $T = 100$, $0.78$ at $T = 50$), so training's
#   $x_T$ no longer matches the $\mathcal N(0, I)$ that sampling starts from, and $L_T$ (eq. 5)
#   grows from $2\cdot10^{-5}$ bits per dimension at $T = 1000$ to 0.24 at $T = 100$ and 0.53 at
#   $T = 50$. Scaling the betas by $1000/T$ keeps the sum, so $\bar\alpha_T$ stays at about $e^{-10}$
#   or below for any $T > 20$.
# * Eq. 17 ends at $\bar\alpha_T = 0$, so the uncapped $\beta_T = 1$ at every $T$ (and the last
#   few betas stay large however big $T$ is). Capping $\beta$ at 0.999 keeps $1/\sqrt{\alpha_T}$
#   and $1/\sqrt{\bar\alpha_T}$ finite.
# * `ScheduleExplorer` puts all of it under sliders; `explorer_state` is the same logic as a plain
#   function.
#
# **Further reading.** Lin et al. 2024, *Common Diffusion Noise Schedules and Sample Steps are
# Flawed* ([arXiv:2305.08891](https://arxiv.org/abs/2305.08891)), shows the problem of section 4
# in a widely used text-to-image model: its schedule does not reach zero SNR at $T$. Chen 2023,
# *On the Importance of Noise Scheduling for Diffusion Models*
# ([arXiv:2301.10972](https://arxiv.org/abs/2301.10972)), compares schedules at higher resolutions.
#
# **Next:** notebook 03 builds the UNet that learns to predict $\varepsilon$ from $x_t$ and $t$.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises, one hidden cell each: double-click a cell (or click its title) to
# show the code. Try your own answer first.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# the last entry of ᾱ, index T − 1
answer_1 = NoiseSchedule.from_name("linear", 100).alphas_cumprod[-1].item()
ddpm_teach.exercises.nb02.check_alpha_bar_T(answer_1)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# build the schedule for each T and stop at the first SNR(T) < 1e-4
answer_2 = next(T for T in range(1, 5000) if NoiseSchedule.from_name("linear", T).snr[-1] < 1e-4)
ddpm_teach.exercises.nb02.check_smallest_T(answer_2)

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
# ← [01 · The forward process and its closed form](01_forward_process.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [03 · The UNet →](03_unet.ipynb)
