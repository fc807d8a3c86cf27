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
# # 01 · The forward process and its closed form
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/01_forward_process.ipynb)
#
# [Contents](../README.md#the-course) · [Glossary](glossary.md) · [02 · Noise schedules →](02_noise_schedules.ipynb)
#
# A diffusion model learns to undo a noising process that *we* choose. This notebook is about
# that noising process, the **forward process** of DDPM (Ho et al. 2020, [arXiv:2006.11239](https://arxiv.org/abs/2006.11239)).
# It has no neural network and nothing to train: it is a fixed recipe for turning an image into noise,
# one small step at a time. Everything a diffusion model learns later is defined by it.
#
# **Learning goals.** By the end you can
# 1. write one forward step $q(x_t \mid x_{t-1})$ (eq. 2) and apply it to real images;
# 2. derive the closed form $q(x_t \mid x_0)$ (eq. 4) by merging Gaussians, and say why it matters for training;
# 3. show *numerically* that iterating eq. 2 and jumping with eq. 4 give the same distribution;
# 4. write the posterior $q(x_{t-1} \mid x_t, x_0)$ (eqs. 6–7), and say how its variance $\tilde\beta_t$ compares with $\beta_t$;
# 5. convert between $x_0$ and the noise $\varepsilon$ (eq. 4 inverted, as in eq. 15), and say why errors in $\varepsilon$ hurt most at large $t$;
# 6. translate between the paper's 1-based $t$ and the package's 0-based index without off-by-one mistakes.
#
# **Runtime** (whole notebook, full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-11-22): 18 s
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-02, 12-07): 22-31 s (four runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): about 13 s (AMD) · GPU: not measured
#
# Most of it is the random draws of the numerical proofs in section 5. Slower on a CPU with fewer cores or
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
# The one size knob is the environment variable `DDPM_TEACH_SIZE`: `full` (the default) or `ci`
# (what `pytest --nbval` runs). Here it sets only how many random draws the numerical proofs in
# sections 5 and 6 make. Every printed number that nbval checks is the same at both sizes.

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports")        # times each section of this notebook; the last cell prints the times
import math

import matplotlib.pyplot as plt
import torch

from ddpm_teach.course import by_size, timed
from ddpm_teach.data import load_dataset
from ddpm_teach.exercises import nb01
from ddpm_teach.forward import predict_eps_from_x0, predict_x0_from_eps, q_posterior, q_sample, q_step
from ddpm_teach.plotting import show_images, to_unit_range
from ddpm_teach.schedules import NoiseSchedule

SIZE = ddpm_teach.course.notebook_size()
N_DRAWS = by_size(full=100_000, ci=10_000)   # draws per pixel in the numerical proofs (sections 5 and 6)
_ = torch.manual_seed(0)                      # every random draw below also has its own torch.Generator

# %% [markdown]
# ## 1. The noise schedule, and how we count time
#
# The forward process adds Gaussian noise in $T$ steps. Step $t$ adds noise of variance $\beta_t$,
# where $0 < \beta_1 < \dots < \beta_T < 1$ is the **noise schedule**. DDPM uses $T = 1000$ and
# $\beta_t$ rising linearly from $10^{-4}$ to $0.02$ (§4 of the paper). Two names come up everywhere:
#
# $$\alpha_t = 1 - \beta_t, \qquad \bar\alpha_t = \prod_{s=1}^{t} \alpha_s .$$
#
# **The index convention (read this twice).** The paper counts steps $t = 1, \dots, T$ and calls the
# data $x_0$. Python counts from 0. The package therefore uses **0-based indices** $t \in [0, T)$:
# **index 0 is the paper's $t = 1$**, and `x0` in code is always the data. So:
#
# | the paper | in `ddpm_teach` |
# |---|---|
# | $\beta_1$ (the first, smallest noise) | `schedule.betas[0]` |
# | $\beta_t$, $\bar\alpha_t$ | `schedule.betas[t - 1]`, `schedule.alphas_cumprod[t - 1]` |
# | $\beta_T$, $\bar\alpha_T$ (the last) | `schedule.betas[T - 1]` = `schedule.betas[999]` |
# | $x_t \sim q(x_t \mid x_0)$ | `q_sample(schedule, x0, t - 1, noise)` |
# | $\bar\alpha_0 = 1$ (no noise yet) | `schedule.alphas_cumprod_prev[0]` |
#
# In this notebook, *"index t"* always means the 0-based index and *"paper t"* the paper's; maths in
# LaTeX uses the paper's numbering.

# %%
ddpm_teach.course.section("1. Schedule and time")
schedule = NoiseSchedule.from_name("linear", T=1000)
print(schedule)
print(f"T = {schedule.T}; valid indices t = 0 .. {schedule.T - 1}")
print(" index t | paper t |   beta_t  | alpha_bar_t")
for t in (0, 1, 499, 998, 999):
    print(f"{t:8d} | {t + 1:7d} | {schedule.betas[t].item():.6f}  | {schedule.alphas_cumprod[t].item():.6f}")

# %% [markdown]
# ## 2. Real images, in $[-1, 1]$
#
# We noise real Fashion-MNIST images (28×28, grayscale). `load_dataset` finds the original IDX files
# offline (the Debian package `dataset-fashion-mnist`) or downloads them with `download=True`; it never
# substitutes anything synthetic. The model's view of an image is a float tensor in $[-1, 1]$
# (DDPM §3.3): black is $-1$, white is $+1$. That scale matters: it is what makes the noise, which has
# variance 1, comparable to the signal.

# %%
ddpm_teach.course.section("2. Real images")
data = load_dataset("fashion_mnist")                 # offline (Debian) or a local copy; else a clear error
print(data)
# one image of each class: the first image with that label, so the choice is the same everywhere
first_of_class = torch.stack([(data.labels == c).nonzero()[0, 0] for c in range(data.num_classes)])
x0, labels = data.batch(first_of_class)              # x0: (10, 1, 28, 28) float32 in [-1, 1]
print("x0:", tuple(x0.shape), x0.dtype, f"values in [{x0.min().item():.0f}, {x0.max().item():.0f}]")
show_images(x0, nrow=10, labels=labels, class_names=data.classes)
plt.show()

# %% [markdown]
# ## 3. One step at a time: $q(x_t \mid x_{t-1})$ (eq. 2)
#
# Each forward step shrinks the image a little and adds a little Gaussian noise:
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\!\left(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t \mathbf I\right) \tag{2}$$
#
# or, as code would write it, with fresh noise $\varepsilon \sim \mathcal N(0, \mathbf I)$ at every step,
#
# $$x_t = \sqrt{1-\beta_t}\;x_{t-1} + \sqrt{\beta_t}\;\varepsilon .$$
#
# Why shrink by $\sqrt{1-\beta_t}$ rather than just add noise? If $x_{t-1}$ has variance 1, then
# $x_t$ has variance $(1-\beta_t) + \beta_t = 1$: the process is **variance preserving**, so after
# many steps $x_T$ is close to a standard Gaussian $\mathcal N(0, \mathbf I)$ rather than blowing up.
#
# Here is eq. 2 written from scratch for one index, checked against the package's `q_step`:

# %%
ddpm_teach.course.section("3. One step (eq. 2)")


def q_step_teaching(betas, x_prev, t, noise):
    """Eq. 2 for one 0-based index t (an int): x_t = √(1 − β_t) x_{t−1} + √β_t ε."""
    beta = betas[t].item()                          # betas[t] is the paper's β_{t+1}
    return math.sqrt(1.0 - beta) * x_prev + math.sqrt(beta) * noise


gen = torch.Generator().manual_seed(1)
for t in (0, 10, 500, 999):
    noise = torch.randn(x0.shape, generator=gen)
    torch.testing.assert_close(q_step_teaching(schedule.betas, x0, t, noise), q_step(schedule, x0, t, noise))
print("q_step_teaching matches ddpm_teach.forward.q_step at indices 0, 10, 500 and 999")

# %% [markdown]
# From here on we use the package's `q_step`. Let us run all 1000 steps on our ten images and keep
# snapshots. After the step with index `t` we hold the paper's $x_{t+1}$.

# %%
SHOW_T = [0, 49, 99, 199, 299, 499, 749, 999]     # 0-based indices: the paper's t = 1, 50, 100, ..., 1000

gen = torch.Generator().manual_seed(2)
x = x0
iterated = {}                                      # index t -> x_t (10, 1, 28, 28)
with timed("all the forward steps on ten images"):
    for t in range(schedule.T):
        x = q_step(schedule, x, t, torch.randn(x.shape, generator=gen))   # x_{t-1} -> x_t (eq. 2)
        if t in SHOW_T:
            iterated[t] = x

print(" index t | paper t | mean of the pixels | std of the pixels")
print(f"{'data':>8} | {'x_0':>7} | {x0.mean().item():18.3f} | {x0.std().item():17.3f}")
for t, x_t in iterated.items():
    print(f"{t:8d} | {t + 1:7d} | {x_t.mean().item():18.3f} | {x_t.std().item():17.3f}")


# %% [markdown]
# The mean of the pixels drifts to 0 and their spread to 1: $x_T$ looks like pure $\mathcal N(0, \mathbf I)$ noise.
# Pictures say it better. (Values outside $[-1, 1]$ are clipped for display only.)

# %%
def plot_noising_grid(rows, row_labels, col_titles, title):
    """A grid of images: rows[r][c] is one image [1, H, W] in [-1, 1]."""
    n_rows, n_cols = len(rows), len(rows[0])
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.2 * n_cols, 1.25 * n_rows + 0.8), squeeze=False)
    for r, (row, label) in enumerate(zip(rows, row_labels)):
        for c, image in enumerate(row):
            axes[r, c].imshow(to_unit_range(image)[0], cmap="gray", vmin=0.0, vmax=1.0)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(col_titles[c], fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


col_titles = ["x_0 (data)"] + [f"index t={t}\n(paper t={t + 1})" for t in SHOW_T]
show = [0, 1, 7, 9]                                # T-shirt, trouser, sneaker, ankle boot
plot_noising_grid([[x0[i]] + [iterated[t][i] for t in SHOW_T] for i in show],
                  [data.classes[labels[i]] for i in show], col_titles,
                  "The forward process, one step at a time (eq. 2 iterated)")
plt.show()

# %% [markdown]
# The garment is still obvious after 100 steps, faint after 300, and gone by 500. Notice how *slowly*
# the first steps change the picture ($\beta_1 = 10^{-4}$) and how much of the schedule is spent on
# images that already look like noise to us. Notebook 02 is about that choice.
#
# ## 4. Jumping straight to step $t$: $q(x_t \mid x_0)$ in closed form (eq. 4)
#
# Iterating is slow: to get $x_{500}$ you take 500 steps. Training (notebook 04) needs $x_t$ at a
# random $t$ for every image of every batch, so DDPM uses a closed form instead:
#
# $$q(x_t \mid x_0) = \mathcal N\!\left(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)\mathbf I\right),
# \qquad \text{i.e.}\quad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\;\varepsilon . \tag{4}$$
#
# **Derivation sketch (merging Gaussians).** Write two steps of eq. 2 with independent noises
# $\varepsilon_{t-1}, \varepsilon_t$:
#
# $$
# \begin{aligned}
# x_t &= \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\varepsilon_t \\
#     &= \sqrt{\alpha_t}\left(\sqrt{\alpha_{t-1}}\,x_{t-2} + \sqrt{1-\alpha_{t-1}}\,\varepsilon_{t-1}\right) + \sqrt{1-\alpha_t}\,\varepsilon_t \\
#     &= \sqrt{\alpha_t\alpha_{t-1}}\;x_{t-2} + \underbrace{\sqrt{\alpha_t(1-\alpha_{t-1})}\,\varepsilon_{t-1} + \sqrt{1-\alpha_t}\,\varepsilon_t}_{\text{a sum of independent zero-mean Gaussians}} .
# \end{aligned}
# $$
#
# A sum of independent Gaussians $\mathcal N(0,\sigma_1^2) + \mathcal N(0,\sigma_2^2)$ is $\mathcal N(0, \sigma_1^2+\sigma_2^2)$,
# and here $\sigma_1^2+\sigma_2^2 = \alpha_t - \alpha_t\alpha_{t-1} + 1 - \alpha_t = 1 - \alpha_t\alpha_{t-1}$. So
# $x_t = \sqrt{\alpha_t\alpha_{t-1}}\,x_{t-2} + \sqrt{1-\alpha_t\alpha_{t-1}}\,\bar\varepsilon$ with one standard
# Gaussian $\bar\varepsilon$: two steps have merged into one of the same form. Repeating down to $x_0$ gives eq. 4.
#
# Unrolled all the way, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sum_{s=1}^{t} w_s\,\varepsilon_s$ with weights
# $w_s = \sqrt{\beta_s\,\bar\alpha_t/\bar\alpha_s}$. With $\beta_s = 1 - \alpha_s$ (and
# $\bar\alpha_t\,\alpha_s/\bar\alpha_s = \bar\alpha_t/\bar\alpha_{s-1}$, since $\bar\alpha_s = \bar\alpha_{s-1}\alpha_s$; $\bar\alpha_0 = 1$),
# $\sum_s w_s^2 = \sum_s \left(\bar\alpha_t/\bar\alpha_s - \bar\alpha_t/\bar\alpha_{s-1}\right) = 1 - \bar\alpha_t$ (the sum telescopes).
#
# First the formula from scratch, checked against the package's `alphas_cumprod` and `q_sample`:

# %%
ddpm_teach.course.section("4. Closed form (eq. 4)")


def q_sample_teaching(betas, x0, t, noise):
    """Eq. 4 for one 0-based index t (an int): x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)[t].item()    # ᾱ_t = Π_{s≤t} (1 − β_s)
    return math.sqrt(alpha_bar) * x0 + math.sqrt(1.0 - alpha_bar) * noise


torch.testing.assert_close(torch.cumprod(1.0 - schedule.betas, dim=0), schedule.alphas_cumprod)
gen = torch.Generator().manual_seed(3)
for t in (0, 10, 500, 999):
    noise = torch.randn(x0.shape, generator=gen)
    torch.testing.assert_close(q_sample_teaching(schedule.betas, x0, t, noise), q_sample(schedule, x0, t, noise))
print("alphas_cumprod and q_sample_teaching match the package at indices 0, 10, 500 and 999")

# %% [markdown]
# Now the derivation itself, checked in code. We take 300 steps of eq. 2 with noises we keep, merge
# those 300 noises into one with the weights $w_s$, and feed that single noise to `q_sample`.
# It must land on *exactly* the same $x_t$, pixel for pixel (in float64, up to rounding):

# %%
t_merge = 299                                                     # index 299 = the paper's t = 300
x0_64 = x0[:1].double()                                           # (1, 1, 28, 28), one image in float64
gen = torch.Generator().manual_seed(4)
noises = torch.randn((t_merge + 1, *x0_64.shape), generator=gen, dtype=torch.float64)  # (300, 1, 1, 28, 28)
x = x0_64
for s in range(t_merge + 1):
    x = q_step(schedule, x, s, noises[s])                         # 300 steps of eq. 2

alpha_bar = schedule.alphas_cumprod
weights = (schedule.betas[: t_merge + 1] * alpha_bar[t_merge] / alpha_bar[: t_merge + 1]).sqrt()  # (300,) w_s
print(f"sum of w_s^2 = {weights.pow(2).sum().item():.8f}   1 - alpha_bar_t = {1 - alpha_bar[t_merge].item():.8f}")
eps_merged = (weights.view(-1, 1, 1, 1, 1) * noises).sum(0) / (1 - alpha_bar[t_merge]).sqrt()  # (1, 1, 28, 28)
torch.testing.assert_close(q_sample(schedule, x0_64, t_merge, eps_merged), x)
print("q_sample with the merged noise lands exactly on the iterated x_t")

# %% [markdown]
# With *fresh* noise, `q_sample` gives a different picture from the iterated one, but one with the same
# amount of noise. Iterated (top of each pair) and closed form (below it) side by side:

# %%
gen = torch.Generator().manual_seed(5)
closed = {t: q_sample(schedule, x0, t, torch.randn(x0.shape, generator=gen)) for t in SHOW_T}  # each (10, 1, 28, 28)
rows, row_labels = [], []
for i in (0, 9):
    rows += [[x0[i]] + [iterated[t][i] for t in SHOW_T], [x0[i]] + [closed[t][i] for t in SHOW_T]]
    row_labels += [f"{data.classes[labels[i]]}\niterated (eq. 2)", f"{data.classes[labels[i]]}\nclosed form (eq. 4)"]
plot_noising_grid(rows, row_labels, col_titles, "Iterating eq. 2 and jumping with eq. 4 look alike")
plt.show()

# %% [markdown]
# The two coefficients of eq. 4 tell the whole story: $\sqrt{\bar\alpha_t}$ scales the signal down and
# $\sqrt{1-\bar\alpha_t}$ scales the noise up. The dots mark the snapshots above.

# %%
t_axis = torch.arange(schedule.T)
fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(t_axis, schedule.sqrt_alphas_cumprod, label="√ᾱ_t  (signal scale)")
ax.plot(t_axis, schedule.sqrt_one_minus_alphas_cumprod, label="√(1 − ᾱ_t)  (noise scale)")
ax.plot(SHOW_T, schedule.sqrt_alphas_cumprod[SHOW_T], "o", color="C0", markersize=4)
ax.plot(SHOW_T, schedule.sqrt_one_minus_alphas_cumprod[SHOW_T], "o", color="C1", markersize=4)
ax.set_xlabel("index t (0-based; paper t = index + 1)")
ax.set_ylabel("coefficient in eq. 4")
ax.set_title("q(x_t | x_0): linear schedule, T = 1000")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 1
# What is $\bar\alpha_t$ at the **paper's** $t = 500$ for this linear schedule ($T = 1000$)? Give a
# number (4 significant digits are enough) and check it with `nb01.check_alpha_bar_t500(answer)`.
# Mind the index convention.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 1: uncomment, fill in and run.
# answer = ...
# nb01.check_alpha_bar_t500(answer)

# %% [markdown]
# ### Exercise 2
# At what **0-based index** $t$ does the signal scale $\sqrt{\bar\alpha_t}$ first drop below $0.5$?
# Check it with `nb01.check_first_t_below_half(answer)`.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 2: uncomment, fill in and run.
# answer = ...
# nb01.check_first_t_below_half(answer)

# %% [markdown]
# ## 5. A numerical proof: iterating eq. 2 gives eq. 4, in distribution
#
# The merged-noise check proved the algebra for one particular set of noises. The claim we rely on is a
# statement about **distributions**: if you run eq. 2 $t$ times with fresh noise, the $x_t$ you get
# has exactly the law of eq. 4, $\mathcal N(\sqrt{\bar\alpha_t}x_0, (1-\bar\alpha_t)\mathbf I)$. Let us test it
# the way a statistician would: draw many times and compare.
#
# We take four pixels of one image (background black, two greys, white) and make `N_DRAWS` copies of
# them. Each copy is noised twice: once by 1000 steps of `q_step` (snapshots at a few indices), once by
# one `q_sample` per index. For each (index, pixel) we compare the sample mean and variance with eq. 4.
# With $N$ draws the sample mean has standard error $\sigma/\sqrt N$ and the sample variance
# $\sigma^2\sqrt{2/(N-1)}$, so "agrees" means *within 5 standard errors*. A two-sample
# Kolmogorov–Smirnov test then compares the two whole distributions with each other.

# %%
ddpm_teach.course.section("5. Numerical proof")
targets = torch.tensor([-1.0, -0.3, 0.3, 1.0])                        # black, two greys, white
image = x0[0].flatten()                                                # (784,) the T-shirt
pixel_index = torch.stack([(image - v).abs().argmin() for v in targets])
pixels = image[pixel_index].double()                                   # (4,) the x_0 values
print("x_0 of the four pixels:", [round(v, 3) for v in pixels.tolist()])

PROOF_T = [0, 49, 149, 299, 999]                                       # 0-based: the paper's t = 1, 50, 150, 300, 1000
x0_draws = pixels.view(1, 1, 1, 4).expand(N_DRAWS, 1, 1, 4)           # (N, 1, 1, 4): N copies of the 4 pixels
gen = torch.Generator().manual_seed(6)
iterated_draws, closed_draws = {}, {}
x = x0_draws
with timed("the draws"):
    for t in range(max(PROOF_T) + 1):
        x = q_step(schedule, x, t, torch.randn(x.shape, generator=gen, dtype=torch.float64))   # eq. 2
        if t in PROOF_T:
            iterated_draws[t] = x.reshape(N_DRAWS, 4)                  # (N, 4)
    for t in PROOF_T:
        noise = torch.randn(x0_draws.shape, generator=gen, dtype=torch.float64)
        closed_draws[t] = q_sample(schedule, x0_draws, t, noise).reshape(N_DRAWS, 4)          # eq. 4
print("iterated and closed-form draws:", {t: tuple(v.shape[1:]) for t, v in iterated_draws.items()}, "(per index: N x 4)")

# %% [markdown]
# The table: sample mean and variance of each method next to eq. 4's values (these numbers wobble
# with `N_DRAWS`, in the third decimal or so, so nbval does not compare them).

# %%
# NBVAL_IGNORE_OUTPUT
print(f"N_DRAWS = {N_DRAWS} (size: {SIZE})")
print(" index | x_0    |       mean: eq. 4  iterated   closed |   variance: eq. 4  iterated   closed")
for t in PROOF_T:
    true_mean = schedule.sqrt_alphas_cumprod[t] * pixels                # (4,)
    true_var = 1 - schedule.alphas_cumprod[t]
    for p in range(4):
        it, cf = iterated_draws[t][:, p], closed_draws[t][:, p]
        print(f"{t:6d} | {pixels[p].item():+.3f} | {true_mean[p].item():+17.4f} {it.mean().item():+9.4f} {cf.mean().item():+8.4f} "
              f"| {true_var.item():17.4f} {it.var().item():9.4f} {cf.var().item():8.4f}")


# %%
def z_scores(draws, t):
    """(sample − eq. 4) / standard error, for the means and the variances of the 4 pixels at index t."""
    n = draws.shape[0]
    true_mean = schedule.sqrt_alphas_cumprod[t] * pixels               # (4,)
    true_var = (1 - schedule.alphas_cumprod[t]).item()
    z_mean = (draws.mean(0) - true_mean) / math.sqrt(true_var / n)      # SE of a mean: σ/√N
    z_var = (draws.var(0) - true_var) / (true_var * math.sqrt(2 / (n - 1)))  # SE of a variance: σ²√(2/(N−1))
    return torch.cat([z_mean, z_var])                                  # (8,)


def ks_statistic(a, b):
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the two empirical CDFs."""
    a, b = a.sort().values, b.sort().values
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True) / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True) / len(b)
    return (cdf_a - cdf_b).abs().max().item()


z_iterated = torch.cat([z_scores(iterated_draws[t], t) for t in PROOF_T])
z_closed = torch.cat([z_scores(closed_draws[t], t) for t in PROOF_T])
ks_critical = 1.95 * math.sqrt(2 / N_DRAWS)                           # 0.1 % level for two samples of size N
ks_ok = [ks_statistic(iterated_draws[t][:, p], closed_draws[t][:, p]) < ks_critical for t in PROOF_T for p in range(4)]
n = len(PROOF_T) * 4
print(f"iterated q_step: all {n} means and {n} variances within 5 standard errors of eq. 4: {bool(z_iterated.abs().max() < 5)}")
print(f"q_sample:        all {n} means and {n} variances within 5 standard errors of eq. 4: {bool(z_closed.abs().max() < 5)}")
print(f"Kolmogorov-Smirnov, iterated vs closed form: {sum(ks_ok)} of {n} (index, pixel) pairs pass at the 0.1% level")

# %% [markdown]
# The histograms tell the same story at a glance: for a black and a white pixel, the iterated draws
# (filled), the closed-form draws (outline) and eq. 4's density (black line) lie on top of each other.
# Early on the two pixels are far apart; by the last index both are $\mathcal N(0, 1)$ and the image is forgotten.

# %%
HIST_T = PROOF_T[1:]                # at index 0 (variance 1e-4) the histograms would be needles
fig, axes = plt.subplots(1, len(HIST_T), figsize=(3.3 * len(HIST_T), 3.2))
for ax, t in zip(axes, HIST_T):
    std = math.sqrt(1 - schedule.alphas_cumprod[t].item())
    for p, color in ((0, "C0"), (3, "C3")):
        mean = schedule.sqrt_alphas_cumprod[t].item() * pixels[p].item()
        bins = torch.linspace(mean - 4 * std, mean + 4 * std, 60)
        ax.hist(iterated_draws[t][:, p], bins=bins, density=True, alpha=0.4, color=color,
                label=f"x_0 = {pixels[p].item():+.0f}: iterated")
        ax.hist(closed_draws[t][:, p], bins=bins, density=True, histtype="step", color=color, linewidth=1.5,
                label=f"x_0 = {pixels[p].item():+.0f}: closed form")
        grid = torch.linspace(mean - 4 * std, mean + 4 * std, 200)
        ax.plot(grid, torch.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)), "k", linewidth=0.8)
    ax.set_title(f"index t={t} (paper t={t + 1})", fontsize=10)
    ax.set_xlabel("pixel value x_t")
axes[0].set_ylabel("density")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)   # below: covers no peak
fig.suptitle("Iterating eq. 2 (filled) vs eq. 4 in one jump (outline); black line: the density of eq. 4")
fig.tight_layout(rect=(0, 0.08, 1, 1))              # leave the bottom strip to the legend
plt.show()

# %% [markdown]
# ## 6. Going back one step: the posterior $q(x_{t-1} \mid x_t, x_0)$ (eqs. 6–7)
#
# The reverse process (notebook 05) walks from noise back to data one step at a time, so it needs
# $x_{t-1}$ given $x_t$. On its own, $q(x_{t-1} \mid x_t)$ depends on the whole data distribution and has
# no formula. But **given $x_0$ as well**, it is a Gaussian with a simple formula, and it is the target
# that the model's reverse step is trained to match (the KL terms of eq. 5):
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal N\!\left(x_{t-1};\ \tilde\mu_t(x_t, x_0),\ \tilde\beta_t \mathbf I\right) \tag{6}$$
#
# $$\tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
# \qquad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t \tag{7}$$
#
# **Derivation sketch.** By Bayes' rule and the Markov property,
# $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\; q(x_{t-1} \mid x_0)$. As functions of $x_{t-1}$ both factors
# are Gaussian bumps:
# - $q(x_t \mid x_{t-1}) \propto \exp\!\big(-\tfrac{(x_t - \sqrt{\alpha_t}x_{t-1})^2}{2\beta_t}\big)$: centre $x_t/\sqrt{\alpha_t}$, precision (1/variance) $\alpha_t/\beta_t$;
# - $q(x_{t-1} \mid x_0)$ (eq. 4 at $t-1$): centre $\sqrt{\bar\alpha_{t-1}}\,x_0$, precision $1/(1-\bar\alpha_{t-1})$.
#
# A product of Gaussians is a Gaussian whose **precision is the sum** of the precisions and whose
# **mean is the precision-weighted average** of the centres:
# $1/\tilde\beta_t = \alpha_t/\beta_t + 1/(1-\bar\alpha_{t-1})$, and $\tilde\mu_t = \tilde\beta_t\big(\tfrac{\sqrt{\alpha_t}}{\beta_t}x_t + \tfrac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\big)$.
# With $\alpha_t(1-\bar\alpha_{t-1}) + \beta_t = 1 - \bar\alpha_t$ this simplifies to eq. 7.
#
# At the paper's $t = 1$ (index 0), $\bar\alpha_0 = 1$: $x_{t-1}$ *is* $x_0$, so $\tilde\beta_1 = 0$ and $\tilde\mu_1 = x_0$.
#
# Below, the precision form written from scratch (a different formula from eq. 7, so this is a real check)
# against the package's `q_posterior`, which returns `(mean, variance, log_variance_clipped)`. Its tensors
# are passed by name, `q_posterior(schedule, x0=..., x_t=..., t=...)`: $x_0$ and $x_t$ have the same shape, so
# a swap would otherwise go unnoticed.

# %%
ddpm_teach.course.section("6. Posterior")


def posterior_teaching(betas, x0, x_t, t):
    """Eqs. 6-7 by Bayes' rule: the product of two Gaussians in x_{t−1}. 0-based index t ≥ 1."""
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)
    beta, alpha_bar_prev = betas[t].item(), alpha_bar[t - 1].item()      # paper's β_{t+1} and ᾱ_t (0-based index t)
    alpha = 1.0 - beta
    precision_step = alpha / beta                                          # from q(x_t | x_{t−1})
    precision_prior = 1.0 / (1.0 - alpha_bar_prev)                         # from q(x_{t−1} | x_0)
    variance = 1.0 / (precision_step + precision_prior)                    # β̃_t
    mean = variance * (math.sqrt(alpha) / beta * x_t + math.sqrt(alpha_bar_prev) / (1.0 - alpha_bar_prev) * x0)
    return mean, variance


x0_ten = x0.double()                                                       # (10, 1, 28, 28): all ten images, float64
gen = torch.Generator().manual_seed(7)
for t in (1, 10, 100, 500, 999):
    x_t = q_sample(schedule, x0_ten, t, torch.randn(x0_ten.shape, generator=gen, dtype=torch.float64))
    mean, variance, _ = q_posterior(schedule, x0=x0_ten, x_t=x_t, t=t)     # (10, 1, 28, 28), (10, 1, 1, 1)
    mean_teaching, variance_teaching = posterior_teaching(schedule.betas, x0_ten, x_t, t)
    torch.testing.assert_close(mean, mean_teaching)
    torch.testing.assert_close(variance, torch.full_like(variance, variance_teaching))
print("posterior_teaching (Bayes' rule) matches q_posterior (eq. 7) at indices 1, 10, 100, 500 and 999")

mean, variance, log_variance = q_posterior(schedule, x0=x0_ten, x_t=x_t, t=0)   # index 0 = the paper's t = 1
print("index 0: mean equals x_0:", torch.allclose(mean, x0_ten, rtol=0, atol=1e-9), "| variance:", variance.flatten()[0].item(),
      f"| clipped log variance: {log_variance.flatten()[0].item():.4f} (= log of the variance at index 1)")

# %% [markdown]
# And the posterior *in distribution*, by sampling: draw $x_{t-1} \sim q(x_{t-1} \mid x_0)$ with `q_sample`,
# take one forward step to $x_t$ with `q_step`, and look at what is left of $x_{t-1}$ after subtracting
# $\tilde\mu_t(x_t, x_0)$. Eq. 6 says that residual is $\mathcal N(0, \tilde\beta_t)$ and **uncorrelated with $x_t$**
# (all the information $x_t$ carries about $x_{t-1}$ is in $\tilde\mu_t$). Same four pixels, `N_DRAWS` draws:

# %%
# NBVAL_IGNORE_OUTPUT
POSTERIOR_T = [1, 49, 299, 999]
gen = torch.Generator().manual_seed(8)
z_all = []
print(" index | x_0    | residual mean |  residual var (beta_tilde) | corr(residual, x_t)")
for t in POSTERIOR_T:
    x_prev = q_sample(schedule, x0_draws, t - 1, torch.randn(x0_draws.shape, generator=gen, dtype=torch.float64))
    x_t = q_step(schedule, x_prev, t, torch.randn(x0_draws.shape, generator=gen, dtype=torch.float64))
    mean, variance, _ = q_posterior(schedule, x0=x0_draws, x_t=x_t, t=t)
    residual = (x_prev - mean).reshape(N_DRAWS, 4)                            # (N, 4)
    x_t = x_t.reshape(N_DRAWS, 4)
    beta_tilde = schedule.posterior_variance[t].item()
    for p in range(4):
        r, xt = residual[:, p], x_t[:, p]
        corr = ((r - r.mean()) * (xt - xt.mean())).mean() / (r.std() * xt.std())
        z_all += [r.mean() / math.sqrt(beta_tilde / N_DRAWS),                           # SE: √(β̃/N)
                  (r.var() - beta_tilde) / (beta_tilde * math.sqrt(2 / (N_DRAWS - 1))),  # SE: β̃√(2/(N−1))
                  corr * math.sqrt(N_DRAWS)]                                              # SE: 1/√N
        print(f"{t:6d} | {pixels[p].item():+.3f} | {r.mean().item():+13.5f} | {r.var().item():.6f} ({beta_tilde:.6f})"
              f"       | {corr.item():+.4f}")
posterior_ok = bool(torch.stack(z_all).abs().max() < 5)

# %%
print(f"residual means, variances and correlations all within 5 standard errors of eq. 6: {posterior_ok}")

# %% [markdown]
# How big is the posterior variance $\tilde\beta_t$ compared with the forward step's $\beta_t$?

# %%
print(" index t | paper t |   beta_t   | beta_tilde_t | ratio | coef of x_0 | coef of x_t")
for t in (0, 1, 9, 99, 499, 999):
    print(f"{t:8d} | {t + 1:7d} | {schedule.betas[t].item():.8f} | {schedule.posterior_variance[t].item():.8f}   | "
          f"{(schedule.posterior_variance[t] / schedule.betas[t]).item():.3f} | "
          f"{schedule.posterior_mean_coef1[t].item():11.4f} | {schedule.posterior_mean_coef2[t].item():11.4f}")

paper_t = t_axis + 1                  # plotted against the paper's t on a log axis: the action is early
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
axes[0].plot(paper_t, schedule.betas, label=r"$\beta_t$ (forward step)")
axes[0].plot(paper_t[1:], schedule.posterior_variance[1:], "--", label=r"$\tilde\beta_t$ (posterior, eq. 7)")
axes[0].set_yscale("log")
axes[0].set_ylabel("variance")
axes[0].set_title(r"$\beta_t$ and $\tilde\beta_t$ ($\tilde\beta_1 = 0$ is off the log scale)", fontsize=10)
axes[1].plot(paper_t, schedule.posterior_variance / schedule.betas)
axes[1].set_ylabel(r"$\tilde\beta_t / \beta_t = (1-\bar\alpha_{t-1}) / (1-\bar\alpha_t)$")
axes[1].set_title("the ratio: 0 at the first step, then close to 1", fontsize=10)
axes[2].plot(paper_t, schedule.posterior_mean_coef1, label=r"weight of $x_0$")
axes[2].plot(paper_t, schedule.posterior_mean_coef2, label=r"weight of $x_t$")
axes[2].set_ylabel(r"coefficient in $\tilde\mu_t$ (eq. 7)")
axes[2].set_title(r"the posterior mean mixes $x_0$ and $x_t$", fontsize=10)
for ax in axes:
    ax.set_xscale("log")
    ax.set_xlabel("paper t = index + 1 (log scale)")
    ax.grid(True, alpha=0.3)
axes[0].legend()
axes[2].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# $\tilde\beta_t \le \beta_t$ always: knowing $x_0$ can only make you surer about $x_{t-1}$. The two differ
# only in the first few dozen steps; after that the ratio is within a few per cent of 1. These are the two
# choices of reverse-step variance $\sigma_t^2$ in DDPM §3.2 ($\beta_t$ is optimal if $x_0 \sim \mathcal N(0, \mathbf I)$,
# $\tilde\beta_t$ if $x_0$ is one fixed point), and the paper found they give similar samples. Notebook 05 tries both.
# The weight of $x_0$ in $\tilde\mu_t$ is 1 at index 0 (there the posterior *is* $x_0$) and soon small; the weight of
# $x_t$ climbs to about $\sqrt{\alpha_t} \approx 1$: late in the process, stepping back means mostly "shrink $x_t$ a little less".
#
# ## 7. From noise to data and back: $x_0 \leftrightarrow \varepsilon$ (eq. 4 inverted, eq. 15)
#
# Eq. 4 ties three things together: $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$. Know two and you know
# the third. DDPM trains a network to predict the noise $\varepsilon$ from $x_t$ (notebook 04); solving eq. 4
# for $x_0$ then gives the model's guess of the clean image, eq. 15 (the same inversion appears inside eq. 9):
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\;\varepsilon_\theta(x_t)}{\sqrt{\bar\alpha_t}}
# = \frac{1}{\sqrt{\bar\alpha_t}}\,x_t - \sqrt{\frac{1}{\bar\alpha_t} - 1}\;\varepsilon_\theta(x_t), \tag{15}$$
#
# and the other way round, $\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0)/\sqrt{1-\bar\alpha_t}$.
#
# ### Exercise 3
# Write `my_predict_x0(schedule, x_t, t, eps)` that returns $x_0$ from $x_t$ and $\varepsilon$. Here `x_t` is
# `[B, C, H, W]` and `t` is a long tensor `[B]` of 0-based indices, one per image, so the coefficient needs
# the shape `[B, 1, 1, 1]` to broadcast. Check it with `nb01.check_predict_x0_from_eps(my_predict_x0)`.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
ddpm_teach.course.section("7. x_0 and noise")
# Your answer to exercise 3: uncomment, complete and run.
# def my_predict_x0(schedule, x_t, t, eps):
#     ...
#
# nb01.check_predict_x0_from_eps(my_predict_x0)

# %% [markdown]
# Your function is a teaching version of the package's `predict_x0_from_eps` (the check compares the two).
# The other direction, `predict_eps_from_x0`, is one line too: below, a teaching version checked against the
# package, then a round trip on real images at every index. We work in float64 here: near the last index
# eq. 15 multiplies by about 157, so in float32 two correct ways of writing it already differ in the fifth digit.

# %%
def eps_from_x0_teaching(schedule, x_t, t, x0):
    alpha_bar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)          # (B, 1, 1, 1), float64
    signal, noise_scale = alpha_bar.sqrt().to(x_t), (1 - alpha_bar).sqrt().to(x_t)
    return (x_t - signal * x0) / noise_scale


gen = torch.Generator().manual_seed(9)
t_batch = torch.tensor([0, 3, 49, 99, 299, 499, 699, 899, 998, 999])      # (10,): one index per image
eps = torch.randn(x0_ten.shape, generator=gen, dtype=torch.float64)
x_t = q_sample(schedule, x0_ten, t_batch, eps)                              # (10, 1, 28, 28) float64
torch.testing.assert_close(eps_from_x0_teaching(schedule, x_t, t_batch, x0_ten), predict_eps_from_x0(schedule, x_t, t_batch, x0_ten))
print("eps_from_x0_teaching matches predict_eps_from_x0")

all_t = torch.arange(schedule.T)                                           # (1000,)
x0_all = x0_ten[torch.arange(schedule.T) % 10]                             # (1000, 1, 28, 28): our images, repeated
eps_all = torch.randn(x0_all.shape, generator=gen, dtype=torch.float64)
x_t_all = q_sample(schedule, x0_all, all_t, eps_all)
torch.testing.assert_close(predict_x0_from_eps(schedule, x_t_all, all_t, eps_all), x0_all)
torch.testing.assert_close(predict_eps_from_x0(schedule, x_t_all, all_t, x0_all), eps_all)
print("round trips x_0 -> x_t -> x_0 and eps -> x_t -> eps are exact at all", schedule.T, "indices")

# %% [markdown]
# A trained network's $\varepsilon_\theta$ is never exact. An error $\delta$ in $\varepsilon$ becomes an error
# $-\sqrt{1/\bar\alpha_t - 1}\;\delta$ in $\hat x_0$, and that factor grows from about 0.01 at the first index
# to over 150 at the last:

# %%
print(" index t | paper t | sqrt(1/alpha_bar_t - 1) | RMS error of x0_hat for a 0.1 error in eps")
gen = torch.Generator().manual_seed(10)
SHOW_ERR_T = [0, 99, 299, 499, 749, 999]
noisy, recovered = [], []
for t in SHOW_ERR_T:
    eps = torch.randn(x0.shape, generator=gen)
    x_t = q_sample(schedule, x0, t, eps)
    eps_hat = eps + 0.1 * torch.randn(x0.shape, generator=gen)             # a predictor that is 10 % off
    x0_hat = predict_x0_from_eps(schedule, x_t, t, eps_hat)                # eq. 15
    noisy.append(x_t)
    recovered.append(x0_hat)
    rms = (x0_hat - x0).pow(2).mean().sqrt().item()
    print(f"{t:8d} | {t + 1:7d} | {schedule.sqrt_recipm1_alphas_cumprod[t].item():23.3f} | {rms:.3f}")

i = 9                                                                      # the ankle boot
titles = [f"index t={t}\n(paper t={t + 1})" for t in SHOW_ERR_T]
plot_noising_grid([[x[i] for x in noisy], [x[i] for x in recovered]],
                  ["x_t", "x̂_0 from ε + 0.1·noise\n(eq. 15)"], titles,
                  "Recovering x_0 with a slightly wrong ε: harmless early, hopeless late")
plt.show()

# %% [markdown]
# Early on, $\hat x_0$ is nearly perfect even with a poor $\varepsilon$; late, the same small error in $\varepsilon$ ruins
# it (the display clips it to $[-1, 1]$; the real values run far outside). This is why samplers clip $\hat x_0$ to
# $[-1, 1]$ (notebook 05), and a first hint of why predicting $\varepsilon$ at large $t$ is easy while recovering $x_0$ there is hard.
#
# ## Summary
#
# - **Eq. 2**, one step: $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon$. It is variance preserving, so
#   after $T = 1000$ steps of the linear schedule a Fashion-MNIST image is indistinguishable from $\mathcal N(0, \mathbf I)$
#   noise (`ddpm_teach.forward.q_step`).
# - **Eq. 4**, the closed form: $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ with $\bar\alpha_t = \prod_{s\le t}(1-\beta_s)$,
#   because independent Gaussian noises merge into one (`q_sample`). It makes training cheap: any $t$ in one jump.
# - **The numerical proof:** with many draws, iterating eq. 2 and jumping with eq. 4 give the same means, variances
#   and whole distributions (within 5 standard errors, and by a two-sample KS test); with the noises merged
#   by the weights $w_s$ they even give the same $x_t$ exactly.
# - **Eqs. 6–7**, the posterior $q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t\mathbf I)$: a product of two Gaussians
#   (`q_posterior`). $\tilde\beta_t \le \beta_t$, equal to 0 at the first step and close to $\beta_t$ after a few dozen.
# - **$x_0 \leftrightarrow \varepsilon$:** eq. 4 inverted (eq. 15) gives $\hat x_0$ from a predicted noise (`predict_x0_from_eps`,
#   `predict_eps_from_x0`); errors in $\varepsilon$ are amplified by $\sqrt{1/\bar\alpha_t - 1}$, up to ×157 at the last step.
# - **Index convention:** `ddpm_teach` counts $t$ from 0. Index 0 is the paper's $t = 1$, index 999 the paper's $T = 1000$,
#   and `x0` is always the data.
#
# **Next:** notebook 02 compares noise schedules (linear, cosine, quadratic, sigmoid) and asks what
# happens to $x_T$ when you change $T$.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises, one hidden cell each: double-click a cell (or click its title) to
# show the code. Try your own answer first.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
answer = schedule.alphas_cumprod[500 - 1].item()     # the paper's t = 500 is index 499
nb01.check_alpha_bar_t500(answer)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
below_half = schedule.sqrt_alphas_cumprod < 0.5     # (T,) bool, False ... False True ... True
answer = int(below_half.nonzero()[0])
print("first index:", answer, "= the paper's t =", answer + 1)
nb01.check_first_t_below_half(answer)


# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
def my_predict_x0(schedule, x_t, t, eps):
    alpha_bar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)          # ᾱ_t: (B,) -> (B, 1, 1, 1), float64
    # coefficients in float64, cast last: in float32, 1 − ᾱ_t loses most of its digits when ᾱ_t ≈ 1
    signal, noise_scale = alpha_bar.sqrt().to(x_t), (1 - alpha_bar).sqrt().to(x_t)
    return (x_t - noise_scale * eps) / signal


nb01.check_predict_x0_from_eps(my_predict_x0)

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
# [Contents](../README.md#the-course) · [Glossary](glossary.md) · [02 · Noise schedules →](02_noise_schedules.ipynb)
