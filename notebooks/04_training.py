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
# # 04 · Training: Algorithm 1 and what makes it work in practice
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/04_training.ipynb)
#
# ← [03 · The UNet](03_unet.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [05 · DDPM sampling →](05_ddpm_sampling.ipynb)
#
# Notebooks 01 to 03 built the forward process $q(x_t \mid x_0)$, its schedules, and the network
# $\varepsilon_\theta(x_t, t)$. This notebook trains that network. The algorithm itself (DDPM
# Algorithm 1) fits in six short lines. Most of this notebook is about what a real training run adds:
# EMA weights, mixed precision, gradient accumulation, a learning-rate schedule, gradient clipping,
# checkpoints that resume exactly, and a clear stop when the loss blows up. It ends with a short training
# run on this CPU and the pretrained model shipped with the course, and shows how to tell a bug from a
# model that simply has not trained long enough.
#
# **Learning goals.** After this notebook you can
# 1. write one training step of Algorithm 1 (ε-prediction, the MSE of eq. 14) by hand, check it
#    against `ddpm_teach.training.diffusion_loss`, and find the same lines of Algorithm 1 in the package's
#    `train_step`;
# 2. say why $t$ is drawn uniformly from *all* of $\{0, \dots, T-1\}$ (index 0 included), and read the
#    loss as a function of $t$: it is hardest at small $t$;
# 3. explain the EMA of the weights, its warm-up $\min(d, \frac{1+n}{10+n})$, and its averaging window;
# 4. explain bf16 and fp16 autocast, and why fp16 needs a gradient scaler but bf16 does not;
# 5. show that gradient accumulation over 2 micro-batches of $B$ gives exactly the gradient of one batch
#    of $2B$;
# 6. compute the learning-rate multiplier of a linear warm-up followed by a cosine decay, and say what
#    gradient clipping does;
# 7. save a run, resume it, and check that it continues exactly as if it had never stopped; and say what
#    `NonFiniteLossError` means;
# 8. tell a bug from under-training: with the loss-versus-$t$ curve, samples over training, and the
#    classifier-FID with its real-versus-real floor; and train the real model from the command line.
#
# **Runtime** (whole notebook, full size, `jupyter nbconvert --execute`, 2 threads; kernel start included):
# - 2-core Intel Xeon with AMX, idle: 78 s (2026-11-22), 58 s (2026-12-07; the sections 52.7 s)
# - 2-core AMD EPYC, AVX-512-BF16, no AMX, idle (2026-12-02, 12-07): 91-120 s (four runs)
# - 2-core AMD EPYC with AVX2 only, no native bf16 (2026-12-07): 555 s, **not idle**: a test run shared
#   the CPU (one run; §10's short training 358 s); not yet measured on the idle machine
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 19-20 s (AMD EPYC, AVX-512-BF16) · GPU: not measured
#
# Most of it is the short training run of §10. Slower on a CPU with fewer cores or no native
# bf16, or on a busy machine; the last cell prints this run's time per section.
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest). It sets how many steps the
# short training run and the resume demonstration take, how many images and timesteps the loss-versus-$t$
# curves use, how many images are sampled, and whether the classifier-FID is computed (full size only:
# the evaluator's first load computes the test set's features, which takes several seconds; later loads
# read them from a cache). Every formula, shape and equality check below prints the
# same at both sizes and is checked by `pytest --nbval`.

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
import copy
import inspect
import math
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ticker import NullFormatter

import ddpm_teach
import ddpm_teach.exercises.nb04
from ddpm_teach.checkpoint import load_checkpoint, load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, timed
from ddpm_teach.data import load_dataset
from ddpm_teach.forward import q_sample
from ddpm_teach.plotting import plot_loss_curve, show_images
from ddpm_teach.samplers import DDIMSampler, sample
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import (NonFiniteLossError, TrainConfig, diffusion_loss, ema_decay_at, lr_at, make_ema,
                                 train_step)
from ddpm_teach.unet import UNet, UNetConfig

SIZE = ddpm_teach.course.notebook_size()
LOSS_T_IMAGES = by_size(full=64, ci=8)     # images per timestep on the loss-versus-t curves
LOSS_T_POINTS = by_size(full=16, ci=5)     # timesteps on those curves
RESUME_K = by_size(full=4, ci=2)           # §8: k steps, interrupt, k more
SHORT_RUN_STEPS = by_size(full=150, ci=3)   # §10: the short CPU training run
SNAPSHOT_N = by_size(full=8, ci=4)         # §10: images sampled at a few points during that run
SAMPLE_N = by_size(full=32, ci=8)          # §10: images sampled from the short run and the shipped model
SAMPLE_STEPS = by_size(full=50, ci=10)     # DDIM steps for those samples
SCORE_SAMPLES = by_size(full=True, ci=False)  # §11: classifier-FID (the evaluator's first load takes several seconds)
torch.manual_seed(0)
WORK_DIR = Path(tempfile.mkdtemp(prefix="ddpm_teach_nb04_"))  # checkpoints written here

# %% [markdown]
# ## 0. The data and the shipped model
#
# `load_dataset("fashion_mnist")` finds the 60,000 training images offline if Debian's
# `dataset-fashion-mnist` package is installed (or any folder with the four IDX files), and otherwise says
# how to get them. They stay in memory as uint8; `data.batch(indices)` gives the model's view, float32
# in $[-1, 1]$.
#
# The course ships a model trained with exactly the machinery of this notebook:
# `checkpoints/fashion_mnist_ddpm.pt`, the small UNet of notebook 03, trained on a 2-core CPU within a
# time budget (§12 gives the command; the cell below prints its size and how it was trained). We use it
# to look at a trained model's loss and
# samples, and its configuration for the short run of §10.

# %%
ddpm_teach.course.section("0. Data and shipped model")
data = load_dataset("fashion_mnist")
print(data)
shipped, schedule, ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_ddpm.pt"))
shipped_config = UNetConfig.from_dict(ckpt["model_config"])
shipped_train = TrainConfig.from_dict(ckpt["train_config"])
T = schedule.T
print(schedule)
print(f"shipped UNet: {shipped.num_parameters():,} parameters, base_channels={shipped_config.base_channels}, "
      f"channel_mults={shipped_config.channel_mults}, attention at {shipped_config.attention_resolutions}")
print(f"trained with: batch {shipped_train.batch_size}, lr {shipped_train.lr}, warm-up {shipped_train.warmup_steps} "
      f"of {shipped_train.steps} steps, EMA decay {shipped_train.ema_decay}, grad clip {shipped_train.grad_clip}")
print(f"budget {shipped_train.max_minutes:g} minutes, mixed precision {shipped_train.mixed_precision}, "
      f"torch.compile {shipped_train.compile}; {shipped_train.steps * shipped_train.batch_size / len(data):.1f} passes "
      f"over the {len(data):,} training images")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"the shipped checkpoint was saved at step {ckpt['step']}, with {len(ckpt['loss_history'])} recorded losses")

# %% [markdown]
# ## 1. Algorithm 1 and the loss of eq. 14
#
# Ho et al. (2020) train $\varepsilon_\theta$ with **Algorithm 1**:
#
# > 1. **repeat**
# > 2. $\quad x_0 \sim q(x_0)$ (a training image)
# > 3. $\quad t \sim \mathrm{Uniform}(\{1, \dots, T\})$
# > 4. $\quad \varepsilon \sim \mathcal N(0, I)$
# > 5. $\quad$ take a gradient descent step on $\nabla_\theta \big\lVert \varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t\big)\big\rVert^2$
# > 6. **until** converged
#
# These are the paper's line numbers, and the package uses them: the lines of `train_step` carry tags
# such as `# Alg. 1 line 5`, and so do the comments of the hand-written step below. Line 5 is the
# gradient of the simplified objective (DDPM eq. 14)
#
# $$L_\text{simple}(\theta) = \mathbb{E}_{t, x_0, \varepsilon}\Big[\big\lVert \varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\; t\big)\big\rVert^2\Big],$$
#
# and its argument $\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon$ is a sample of
# $q(x_t \mid x_0)$ in closed form (eq. 4, notebook 01). No chain of $t$ forward steps and no sampling
# are needed: one random $t$ per image, one noise draw, one forward pass, an MSE. We average the squared
# error over pixels and batch (`F.mse_loss`); that only rescales the loss.
#
# **Indices.** The package's timesteps are 0-based: index $t \in \{0, \dots, T-1\}$ is the paper's
# $t+1$, and $x_0$ is the data. So "$t \sim \mathrm{Uniform}\{1..T\}$" becomes `torch.randint(0, T, ...)`,
# which includes index 0 (the least noisy step). A classic bug is `torch.randint(1, T, ...)`: the model
# never sees index 0, and the last step of sampling, the one that produces the final image, is then done
# by a network that never trained on it.
#
# Here is one training step (lines 2 to 5, one pass through the loop) written out by hand on a real batch,
# for a fresh copy of the small UNet:

# %%
ddpm_teach.course.section("1. Algorithm 1")
student = UNet(shipped_config)                 # a fresh, untrained copy of the shipped architecture
fresh_weights = copy.deepcopy(student.state_dict())   # kept, to repeat this step with the package below
optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
gen = torch.Generator().manual_seed(1)

B = 16
x0, _ = data.batch(torch.randint(0, len(data), (B,), generator=gen))   # Alg. 1 line 2: x_0 ~ q(x_0), (B, 1, 28, 28) in [-1, 1]
t = torch.randint(0, T, (B,), generator=gen)                           # Alg. 1 line 3: t ~ Uniform{0, ..., T-1}, 0-based
noise = torch.randn(x0.shape, generator=gen)                           # Alg. 1 line 4: ε ~ N(0, I)

alpha_bar = schedule.alphas_cumprod[t].float().view(B, 1, 1, 1)        # ᾱ_t, (B, 1, 1, 1); float64 → float32
x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise           # eq. 4
eps_pred = student(x_t, t)                                             # ε_θ(x_t, t), (B, 1, 28, 28)
loss = ((noise - eps_pred) ** 2).mean()                                # Alg. 1 line 5: eq. 14, averaged over pixels and batch

# the same loss from the package, with the same t and ε
package_loss, parts = diffusion_loss(student, schedule, x0, t, noise)
torch.testing.assert_close(loss, package_loss)
print(f"loss by hand {loss.item():.4f} = diffusion_loss {package_loss.item():.4f}")
print(f"the fresh model predicts ε̂ = 0, so the loss is the mean of ε²: {noise.square().mean().item():.4f}")

optimizer.zero_grad(set_to_none=True)
loss.backward()                                                        # Alg. 1 line 5: the gradient ∇_θ...
optimizer.step()                                                       # ...and the descent step
with torch.no_grad():
    print(f"after one AdamW step the same batch scores {diffusion_loss(student, schedule, x0, t, noise)[0].item():.3f}")

# %% [markdown]
# The package's step is `ddpm_teach.training.train_step`: one pass through lines 2 to 5, with the same
# tags. It takes a list of micro-batches `(x0, labels)` (gradient accumulation, §5), draws $t$ and
# $\varepsilon$ from the `generator` it is given, computes the loss with `diffusion_loss`, and wraps
# the descent step in what the rest of this notebook explains: mixed precision (§4), clipping (§7),
# the EMA update (§3), label dropout for a conditional model (notebook 07) and the hybrid loss
# (notebook 08). Read it next to Algorithm 1:

# %%
# NBVAL_IGNORE_OUTPUT
print(inspect.getsource(train_step))

# %% [markdown]
# Lines 1 and 6, the loop itself, belong to the runner, `ddpm_teach.trainer.Trainer` (§8 to §10): its
# `run_step` gathers the step's micro-batches and calls `train_step`, and `train` repeats that until
# the run is done.
#
# Is `train_step` really the step written by hand above? Start from the same fresh weights, the same
# batch and the same generator state after line 2, and compare the weights after one step. (The shipped
# architecture has no dropout, checked below, so the forward pass holds no other randomness.)

# %%
assert shipped_config.dropout == 0.0
replay = torch.Generator().manual_seed(1)                                # gen's seed, as above
x0_again, labels = data.batch(torch.randint(0, len(data), (B,), generator=replay))   # line 2: the same batch
torch.testing.assert_close(x0_again, x0)                                 # replay is now where gen was before line 3

package_student = UNet(shipped_config)
package_student.load_state_dict(fresh_weights)                           # the same fresh weights
package_optimizer = torch.optim.AdamW(package_student.parameters(), lr=1e-3)
package_loss_value = train_step(package_student, schedule, [(x0_again, labels)], package_optimizer,
                                make_ema(package_student, decay=0.999), replay)   # lines 3 to 5
for (name, by_hand), after_step in zip(student.state_dict().items(), package_student.state_dict().values()):
    torch.testing.assert_close(after_step, by_hand, msg=lambda m, name=name: f"{name}: {m}")
print(f"train_step's loss {package_loss_value:.4f} = the loss by hand {loss.item():.4f}")
print(f"train_step and the hand-written step give the same weights: all {len(fresh_weights)} tensors match")

# %% [markdown]
# From here on, `diffusion_loss(model, schedule, x0, t, noise)` is the loss and `train_step` the step
# (with mixed precision, accumulation and clipping around it, §4 to §7).
#
# The timesteps of the trainer come from `torch.randint(0, T, ...)`. Every index from 0 to $T-1$ is
# drawn, and equally often:

# %%
t_draws = torch.randint(0, T, (200_000,), generator=torch.Generator().manual_seed(2))
counts = torch.bincount(t_draws, minlength=T)
print(f"smallest index drawn: {t_draws.min().item()}, largest: {t_draws.max().item()}, "
      f"every index in [0, {T - 1}] drawn: {bool((counts > 0).all())}")
print(f"draws per index: {counts.min().item()} to {counts.max().item()} (expected {200_000 // T} each)")

# %% [markdown]
# For the same batch, the trained model's loss is far lower (its value depends on how long the shipped model
# was trained, so it is not checked):

# %%
# NBVAL_IGNORE_OUTPUT
with torch.no_grad():
    print(f"shipped model on the same batch, t and ε: {diffusion_loss(shipped, schedule, x0, t, noise)[0].item():.4f}")

# %% [markdown]
# ## 2. The loss as a function of $t$
#
# $L_\text{simple}$ is an average over $t$, and the average hides a lot: the task is very different at
# different noise levels. Fix a batch of images and one noise draw, and measure the MSE at one timestep
# at a time. `mse_per_t` below is eq. 14 at a fixed $t$; we check it once against `diffusion_loss`
# with every $t$ equal.

# %%
ddpm_teach.course.section("2. Loss against t")


@torch.no_grad()
def mse_per_t(model, t_values, x0, noise, t_for_model=lambda t: t):
    """ε-MSE of ``model`` at each timestep in ``t_values``, per image: [len(t_values), N].
    ``t_for_model`` maps the true t to what the model is given (identity unless we simulate a bug)."""
    rows = []
    for t_value in t_values:
        t_batch = torch.full((x0.shape[0],), int(t_value))
        x_t = q_sample(schedule, x0, t_batch, noise)                       # eq. 4
        eps_pred = model(x_t, t_for_model(t_batch))
        rows.append(((noise - eps_pred) ** 2).mean(dim=(1, 2, 3)))         # (N,)
    return torch.stack(rows)                                               # (len(t_values), N)


x0_eval, _ = data.batch(torch.randperm(len(data), generator=torch.Generator().manual_seed(3))[:LOSS_T_IMAGES])
noise_eval = torch.randn(x0_eval.shape, generator=torch.Generator().manual_seed(4))
t_grid = np.unique(np.geomspace(1, T, LOSS_T_POINTS).round().astype(int) - 1)   # 0 ... T-1, dense at small t
print("timesteps on the curve: from", t_grid[0], "to", t_grid[-1])

with torch.no_grad():
    t_check = torch.full((LOSS_T_IMAGES,), 500)
    torch.testing.assert_close(mse_per_t(shipped, [500], x0_eval, noise_eval).mean(),
                               diffusion_loss(shipped, schedule, x0_eval, t_check, noise_eval)[0])
with timed("the loss-versus-t curve"):
    shipped_mse_t = mse_per_t(shipped, t_grid, x0_eval, noise_eval)

# %%
def plot_mse_per_t(curves: dict, ax=None, title="ε-prediction MSE against t"):
    """One line per model: the mean over images, with a band from the 10th to the 90th percentile."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, (mse, style) in curves.items():
        low, high = np.quantile(mse.numpy(), [0.1, 0.9], axis=1)
        line, = ax.plot(t_grid + 1, mse.mean(dim=1).numpy(), style, label=label, marker=".")
        ax.fill_between(t_grid + 1, low, high, color=line.get_color(), alpha=0.15)
    ax.axhline(1.0, color="gray", linestyle=":", label="untrained (ε̂ = 0): E[ε²] = 1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t + 1 (the paper's t; log scale)")
    ax.set_ylabel("MSE per pixel")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


plot_mse_per_t({"shipped model": (shipped_mse_t, "-")})
plt.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
for t_value, mse in zip(t_grid, shipped_mse_t.mean(dim=1).tolist()):
    if t_value in (t_grid[0], t_grid[len(t_grid) // 2], t_grid[-1]):
        print(f"t = {t_value:4d}: MSE {mse:.4f}")
print(f"mean over the curve's timesteps: {shipped_mse_t.mean().item():.4f}")

# %% [markdown]
# **Hardest at small $t$.** At $t = T-1$, $x_t$ is almost pure noise ($\sqrt{1-\bar\alpha_t} \approx 1$),
# so $\varepsilon \approx x_t$ and predicting it is easy: the MSE is close to 0. At $t = 0$ the noise has
# a standard deviation of $\sqrt{\beta_1} = 0.01$, about one grey level of the 8-bit image. To tell that
# noise from the picture, the model has to know the clean image to a fraction of a grey level, so the MSE
# stays high however long you train. In between the curve falls steadily.
#
# Two consequences:
# - **The training loss is noisy.** Each batch draws its own $t$'s, and a batch with a few small-$t$
#   images scores much higher than one without. That is why loss curves are shown smoothed (§10).
# - **$L_\text{simple}$ weights all $t$ equally.** In the variational bound (eq. 5) the same squared
#   error is weighted by $\frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)}$ (eq. 12); with
#   $\sigma_t^2 = \beta_t$ that is $\frac{\beta_t}{2\alpha_t(1-\bar\alpha_t)}$. The next cell computes it at
#   every $t$ of the shipped model's schedule. (At the paper's $t = 1$ the bound has the decoder term
#   $L_0$ instead, so the table and the curve start at $t = 2$.)

# %%
# eq. 12's weight of ‖ε − ε_θ‖² with σ_t² = β_t, at every 0-based index t: β_t / (2 α_t (1 − ᾱ_t))
eq12_weight = (schedule.betas / (2 * schedule.alphas * (1 - schedule.alphas_cumprod))).numpy()   # (T,)
t_min = 1 + int(eq12_weight[1:].argmin())                 # from index 1 (the paper's t = 2) on
print(" index t | paper t | eq. 12 weight")
for t_value, note in ((1, ""), (99, ""), (t_min, "  <- the minimum"), (T - 1, "  (the last step)")):
    print(f"{t_value:8d} | {t_value + 1:7d} | {eq12_weight[t_value]:.4f}{note}")

fig, ax = plt.subplots(figsize=(6.5, 3.3))
ax.plot(np.arange(2, T + 1), eq12_weight[1:], label=r"$\beta_t / (2\alpha_t(1-\bar\alpha_t))$ (eq. 12, $\sigma_t^2 = \beta_t$)")
ax.plot(t_min + 1, eq12_weight[t_min], "o", color="C3", label=f"minimum, at the paper's t = {t_min + 1}")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("t + 1 (the paper's t; log scale)")
ax.set_ylabel("weight of the ε-MSE in the bound")
ax.set_title("The weight that L_simple drops")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the printout from the top. The weight is largest at the first steps and has fallen by more than an
# order of magnitude by the paper's $t = 100$. It keeps falling, more slowly, to the minimum of the third
# line, and then climbs back: by the last step it is about where it was at $t = 100$. There
# $1-\bar\alpha_t$ is close to 1 and $\beta_t$ is at its largest, so the weight is about $\beta_t/2$.
# So apart from the first hundred or so steps, the bound weights all $t$ within a factor of about two of
# each other (the curve). DDPM §3.4 drops the weight, setting it to 1 for every $t$. Compared with the
# bound, that down-weights the small-$t$ terms so that the network can focus on the larger $t$, where
# denoising is more difficult; it gave the best samples.
# "Difficult" there means something other than the MSE of the curve above. The image predicted from
# $\hat\varepsilon$, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$,
# carries the ε-error multiplied by $\sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$: about 0.01 at $t = 0$, where
# a large ε-error hardly changes the image, but far above 1 at large $t$, where a tiny ε-error is a
# large error in the image. Notebook 08 brings part of the bound back, to learn the variance.
#
# The same curve is the first tool for telling a bug from under-training (§11).

# %% [markdown]
# ## 3. EMA: an exponential moving average of the weights
#
# SGD with a non-vanishing learning rate never settles: the weights jitter around a good region from
# step to step, and so do the samples. DDPM (Appendix B) samples instead from an **exponential moving
# average** of the weights, updated after every optimizer step:
#
# $$\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1 - d)\,\theta, \qquad \text{e.g. } d = 0.9999 \text{ (DDPM)}.$$
#
# Unrolled, $\theta_\text{EMA}$ is a weighted average of all past weights, the one from $k$ steps ago
# with weight $(1-d)\,d^k$. That weight falls by a factor $e$ after about $1/(1-d)$ steps, the
# **averaging window**: 1,000 steps for $d = 0.999$, 10,000 for $0.9999$.
#
# **Warm-up.** At the start $\theta_\text{EMA}$ is a copy of the first weights, which are still
# essentially random, and with $d = 0.9999$ it would take tens of thousands of steps to forget them: a short
# run would sample from a mostly untrained average. So the decay is warmed up (as TensorFlow's `ExponentialMovingAverage` does
# with `num_updates`):
#
# $$d_n = \min\Big(d,\ \frac{1 + n}{10 + n}\Big), \qquad n = \text{number of earlier updates},$$
#
# which averages over only about $(10+n)/9$ steps early on, and reaches $d$ after
# $n \approx 9/(1-d)$ updates. The package builds the EMA with torch's own `AveragedModel`
# (`make_ema`), whose update function uses `ema_decay_at(n, d)`. `AveragedModel` copies the weights at its
# first update ($n = 0$) and averages from then on. We check that against the formula by hand on a small
# layer:

# %%
ddpm_teach.course.section("3. EMA")
layer = torch.nn.Linear(3, 2)
ema = make_ema(layer, decay=0.999)
by_hand = None
for n in range(6):
    with torch.no_grad():                      # stand-in for an optimizer step: move the weights
        layer.weight.add_(torch.randn(2, 3, generator=gen))
        layer.bias.add_(torch.randn(2, generator=gen))
    ema.update_parameters(layer)
    current = torch.cat([layer.weight.flatten(), layer.bias])
    if n == 0:
        by_hand = current.clone()              # the first update copies
    else:
        d = ema_decay_at(n, 0.999)             # n earlier updates
        by_hand = d * by_hand + (1 - d) * current
    torch.testing.assert_close(torch.cat([ema.module.weight.flatten(), ema.module.bias]), by_hand)
print(f"make_ema matches the formula by hand over {int(ema.n_averaged)} updates")
print("decay of the updates 1..5:", [round(ema_decay_at(n, 0.999), 4) for n in range(1, 6)])

# %%
n_updates = [0, 1, 9, 99, 999, 9_999, 100_000]
for decay in (0.995, 0.999, 0.9999):
    print(f"d = {decay}:", "  ".join(f"n={n}: {ema_decay_at(n, decay):.4f}" for n in n_updates),
          f"| full decay from n = {math.ceil((10 * decay - 1) / (1 - decay))}")

# %% [markdown]
# In a plot of $d_n$ itself, 0.995, 0.999 and 0.9999 all look like 1. The left panel therefore draws
# $1 - d_n$ on a log axis, turned upside down and labelled with $d_n$: every extra 9 is one step up. Each
# curve follows the warm-up (dotted) and leaves it where it reaches its $d$. The right panel reads the same
# curves as the averaging window $1/(1-d_n)$, in steps.

# %%
n_axis = np.unique(np.geomspace(1, 200_000, 400).astype(int))
fig, (ax_d, ax_w) = plt.subplots(1, 2, figsize=(11, 3.6))
for decay in (0.995, 0.999, 0.9999):
    d_n = np.array([ema_decay_at(int(n), decay) for n in n_axis])
    ax_d.plot(n_axis, 1 - d_n, label=f"d = {decay}")
    ax_w.plot(n_axis, 1 / (1 - d_n), label=f"d = {decay}")
ax_d.plot(n_axis, 1 - (1 + n_axis) / (10 + n_axis), "k:", linewidth=1, label="warm-up (1 + n)/(10 + n)")
ax_d.set_yscale("log")
ax_d.invert_yaxis()                                   # up = closer to 1
one_minus_d = [0.5, 0.1, 0.01, 0.001, 0.0001]
ax_d.set_yticks(one_minus_d)
ax_d.set_yticklabels([f"{1 - v:g}" for v in one_minus_d])   # label the axis with d_n itself
ax_d.yaxis.set_minor_formatter(NullFormatter())
ax_d.set_ylabel("decay $d_n$ (axis: $1 - d_n$, log scale)")
ax_d.set_title("EMA decay with warm-up")
ax_w.set_yscale("log")
ax_w.set_ylabel("averaging window 1/(1 − $d_n$), steps")
ax_w.set_title("how many recent steps the EMA averages")
for ax in (ax_d, ax_w):
    ax.set_xscale("log")
    ax.set_xlabel("n, updates so far")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The window grows with the run, about $n/9$ steps, until it reaches $1/(1-d)$. What that means at the
# end of a run: unroll the updates and compute the weight that the final EMA gives to the weights after
# each optimizer step. We check the unrolled weights against `make_ema` itself, by feeding it a
# one-number "model" whose value after step $u$ is $u$:

# %%
def ema_composition(num_steps: int, decay: float, warmup: bool = True) -> np.ndarray:
    """w[u-1]: the weight of the weights after step u (u = 1..num_steps) in the final EMA."""
    weights = np.zeros(num_steps)
    weights[0] = 1.0                                   # AveragedModel's first update copies
    for u in range(2, num_steps + 1):                  # update u follows optimizer step u
        d = ema_decay_at(u - 1, decay, warmup)         # u - 1 earlier updates
        weights[:u - 1] *= d
        weights[u - 1] = 1 - d
    return weights


RUN = shipped_train.steps
runs = {f"d = {shipped_train.ema_decay}, warm-up (shipped)": (shipped_train.ema_decay, True),
        "d = 0.99, warm-up": (0.99, True),
        "d = 0.9999, no warm-up": (0.9999, False)}
one_number = torch.nn.Module()
one_number.value = torch.nn.Parameter(torch.zeros(()))
composition = {}
for label, (decay, warmup) in runs.items():
    composition[label] = ema_composition(RUN, decay, warmup)
    ema_check = make_ema(one_number, decay, warmup)
    for u in range(1, RUN + 1):
        one_number.value.data.fill_(float(u))
        ema_check.update_parameters(one_number)
    torch.testing.assert_close(ema_check.module.value.detach().double(),
                               torch.tensor(composition[label] @ np.arange(1, RUN + 1), dtype=torch.float64),
                               rtol=1e-5, atol=0)
    print(f"{label:32s} weights sum to {composition[label].sum():.4f}; on the weights after step 1: "
          f"{composition[label][0]:6.1%}; on the last {RUN // 10} steps: {composition[label][-(RUN // 10):].sum():6.1%}")
full_from = math.ceil((10 * shipped_train.ema_decay - 1) / (1 - shipped_train.ema_decay))   # d_n = d from here on
print(f"the shipped run: {RUN} steps; d_n reaches {shipped_train.ema_decay} after {full_from} updates "
      f"({full_from / RUN:.0%} of the run), so its last {max(0, RUN - full_from)} steps use the full decay")
print(f"without warm-up the weights after step 1 keep 0.9999^{RUN - 1} = {0.9999 ** (RUN - 1):.1%} of the final EMA")

# %%
no_warmup = "d = 0.9999, no warm-up"                # the curve the arrow points at
first_weight = composition[no_warmup][0]              # its weight on the weights after step 1
fig, ax = plt.subplots(figsize=(7, 3.6))
for label, weights in composition.items():
    ax.plot(np.arange(1, RUN + 1), weights, label=label)
ax.set_yscale("log")
ax.set_ylim(1e-8, 1.5)
ax.set_xlabel("optimizer step u")
ax.set_ylabel("weight in the final EMA")
ax.annotate(f"the weights after step 1: {first_weight:.0%}", xy=(1, first_weight), xytext=(120, 0.1),
            fontsize=8, arrowprops=dict(arrowstyle="->", color="gray"))
ax.set_title(f"What the EMA is made of at the end of a {RUN}-step run")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# With the shipped $d = 0.995$, $d_n$ reaches 0.995 after 1,790 updates, and from then on the window is
# $1/(1-0.995) = 200$ steps; the printout above says how far into the shipped run that happens and how
# many steps are left at the full decay. Look at the share on the last tenth of the run: with a window
# that is short next to the run, the final EMA is made mostly of the last weights, and the first weights
# get a negligible share. With $d = 0.99$ the decay is reached after 890 updates, the window is then 100
# steps, and the last tenth carries even more. Without warm-up, the weights after the very first step,
# which are still nearly the random initialisation, keep $0.9999^{S-1}$ of the weight after $S$ steps
# (the last line of the printout): for a run of a few thousand steps that is a large share, and sampling
# from that EMA would give noise. A good rule is to choose $d$ so that the full window $1/(1-d)$ is a
# small fraction of the run; the 0.9999 of DDPM suits its runs of 800k steps.
#
# The Trainer keeps the EMA model next to the raw one (`trainer.ema.module`) and saves both;
# `load_diffusion_model` loads the EMA weights by default, and the shipped files contain only those.

# %% [markdown]
# ## 4. Mixed precision: bf16, fp16 and the gradient scaler
#
# On a GPU, most of a training step's time goes into convolutions and matrix products, which run several
# times faster in 16-bit floats (tensor cores) and move half the bytes. **Autocast**
# (`torch.autocast(device, dtype=...)`) runs those operations in 16 bits and keeps the rest
# (reductions, normalisations, the loss) in float32. The weights, the optimizer state and the EMA stay in
# float32, so only the forward and backward passes are approximate. Two 16-bit formats:

# %%
ddpm_teach.course.section("4. Mixed precision")
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    info = torch.finfo(dtype)
    print(f"{str(dtype):15s} bits: {info.bits}  relative precision (eps): {info.eps:.1e}  "
          f"largest: {info.max:.1e}  smallest normal: {info.tiny:.1e}")

# %% [markdown]
# - **bf16** keeps float32's 8 exponent bits (the same range, from $10^{-38}$ to $10^{38}$) and gives up
#   precision: about 2-3 significant digits. Nothing overflows or underflows that would not in float32,
#   so it needs no extra machinery. It is the default (`--mixed-precision auto`) on GPUs that support it
#   (Ampere and newer).
# - **fp16** has more precision but only 5 exponent bits: nothing above 65,504, and values below about
#   $6\cdot10^{-8}$ become 0. Below the smallest *normal* number (6.1e-05 in the table above), fp16 keeps
#   going with *subnormal* numbers, which carry fewer significant digits, down to about $6\cdot10^{-8}$.
#   Gradients are often that small, and they would vanish:

# %%
small_gradients = torch.tensor([1e-3, 1e-6, 1e-8])
print("float32:", small_gradients.tolist())
print("fp16:   ", small_gradients.half().float().tolist(), "(1e-8 underflows to 0)")
print("bf16:   ", [float(f"{v:.3g}") for v in small_gradients.bfloat16().float().tolist()])
scale = 2.0 ** 16                                     # GradScaler's initial scale
scaled = (small_gradients * scale).half()             # the backward pass of loss × scale, in fp16
print("fp16 of gradient × 2^16, unscaled in float32:", [float(f"{v:.3g}") for v in (scaled.float() / scale).tolist()])

# %% [markdown]
# That is what **`torch.amp.GradScaler`** does for fp16:
# 1. multiply the loss by a scale $S$ (initially $2^{16}$) before `backward()`, so every gradient is
#    $S$ times larger and stays representable in fp16;
# 2. `unscale_` the gradients (divide by $S$, in float32) before anything looks at them (gradient
#    clipping, §7);
# 3. `step()`: if any gradient is inf or NaN ($S$ was too large), **skip** this optimizer step and halve
#    $S$; otherwise step as usual, and double $S$ after 2,000 clean steps in a row.
#
# `train_step` is written this way for every precision (`scaler.scale(loss).backward()`,
# `scaler.unscale_`, `scaler.step`), and the scaler is enabled only for fp16. With bf16 or float32 it
# passes everything through unchanged. fp16 needs CUDA; on a CPU the choices are `no` (the default there)
# and `bf16`.
#
# On this CPU, autocast to bf16 is easy to try. We run the shipped model in float32 and under bf16
# autocast on the same inputs and compare:

# %%
x_t_mp = q_sample(schedule, x0, t, noise)      # the batch of §1: 16 images, their t and ε
with torch.no_grad():
    out_fp32 = shipped(x_t_mp, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf16 = shipped(x_t_mp, t)
    loss_fp32 = F.mse_loss(out_fp32, noise)
    loss_bf16 = F.mse_loss(out_bf16.float(), noise)
print("output dtype: float32 run", out_fp32.dtype, "| under bf16 autocast", out_bf16.dtype)
relative = (out_bf16.float() - out_fp32).abs().mean() / out_fp32.std()
print("mean |bf16 − float32| below 1% of the output's spread:", bool(relative < 0.01))

# %%
# NBVAL_IGNORE_OUTPUT
diff = (out_bf16.float() - out_fp32).abs()
print(f"max |ε̂_bf16 − ε̂_fp32| = {diff.max().item():.4f}, mean {diff.mean().item():.5f}, "
      f"for outputs of std {out_fp32.std().item():.3f}")
print(f"loss: float32 {loss_fp32.item():.5f}, bf16 autocast {loss_bf16.item():.5f}")

# %% [markdown]
# The bf16 output differs from float32 by about bf16's precision (its eps in the table above): the checked
# line says the mean difference is under 1% of the output's spread, and the cell after it prints the
# sizes. The loss hardly changes, because it averages many such errors. In training, the weights and their
# updates stay in float32 (autocast casts a copy of the weights for each operation), so these errors do
# not build up from step to step.

# %% [markdown]
# ## 5. Gradient accumulation
#
# A batch that does not fit in memory can be split into micro-batches: run forward and backward on each,
# let the gradients add up in `.grad`, and step once. With $L_\text{simple}$ averaged over the batch,
# one batch of $2B$ images has loss
#
# $$L_{2B} = \frac{1}{2B}\sum_{i=1}^{2B} \ell_i = \frac12\Big(\underbrace{\frac1B\sum_{i=1}^{B}\ell_i}_{L_\text{micro 1}} + \underbrace{\frac1B\sum_{i=B+1}^{2B}\ell_i}_{L_\text{micro 2}}\Big),$$
#
# so backpropagating $L_\text{micro}/2$ for each micro-batch gives exactly $\nabla L_{2B}$. This is
# exact only because every image is processed on its own. BatchNorm would couple the images of a batch,
# but the UNet uses GroupNorm (notebook 03) and no dropout here. Numerically, with the same $t$ and
# $\varepsilon$:

# %%
ddpm_teach.course.section("5. Gradient accumulation")
net = copy.deepcopy(shipped).train()           # a trained model, so that every weight gets a gradient
B_micro = 8
acc_gen = torch.Generator().manual_seed(5)
x0_big, _ = data.batch(torch.randint(0, len(data), (2 * B_micro,), generator=acc_gen))
t_big = torch.randint(0, T, (2 * B_micro,), generator=acc_gen)
noise_big = torch.randn(x0_big.shape, generator=acc_gen)

# one batch of 2B
net.zero_grad(set_to_none=True)
diffusion_loss(net, schedule, x0_big, t_big, noise_big)[0].backward()
grads_big = [p.grad.clone() for p in net.parameters()]

# two micro-batches of B, each loss divided by the number of micro-batches, gradients accumulated
grad_accum = 2
net.zero_grad(set_to_none=True)
for micro in range(grad_accum):
    part = slice(micro * B_micro, (micro + 1) * B_micro)
    loss_micro, _ = diffusion_loss(net, schedule, x0_big[part], t_big[part], noise_big[part])
    (loss_micro / grad_accum).backward()       # .grad += ∇(L_micro / 2)
grads_accum = [p.grad.clone() for p in net.parameters()]

for g_big, g_acc in zip(grads_big, grads_accum):
    torch.testing.assert_close(g_acc, g_big, rtol=1e-4, atol=1e-6)
print(f"all {len(grads_big)} parameter gradients match (2 micro-batches of {B_micro} vs one batch of {2 * B_micro})")

# %%
# NBVAL_IGNORE_OUTPUT
worst = max((g_acc - g_big).abs().max().item() for g_big, g_acc in zip(grads_big, grads_accum))
print(f"largest difference {worst:.2e}, for gradients up to {max(g.abs().max().item() for g in grads_big):.2e}: "
      "float32 rounding (the sums are taken in a different order)")

# %% [markdown]
# `TrainConfig(grad_accum=k)` (`--grad-accum k`) does this: `Trainer.run_step` hands `train_step` $k$
# micro-batches of `batch_size` images for each optimizer step, and `train_step` divides each loss by
# $k$. Under DDP, gradients are synchronised across processes only on the last micro-batch (`no_sync`).
# The effective batch is `batch_size × grad_accum × processes`.

# %% [markdown]
# ## 6. Learning rate: linear warm-up, then cosine decay
#
# Adam divides each update by a running estimate of the gradient's scale, and in the first steps that
# estimate rests on a handful of noisy gradients. A full learning rate there can throw the weights far
# off. A **warm-up** grows the rate linearly over the first `warmup_steps` steps (DDPM used 5,000). After
# it, a **cosine decay** lowers it smoothly to a floor, which gives a calmer end of training:
#
# $$\text{multiplier}(s) = \begin{cases} \dfrac{s+1}{W} & s < W \\[2mm]
# r + (1 - r)\cdot\tfrac12\big(1 + \cos(\pi p)\big), \quad p = \min\Big(1, \dfrac{s - W}{S - W}\Big) & s \ge W \end{cases}$$
#
# with $s$ the 0-based optimizer step, $W$ = `warmup_steps`, $S$ = `steps` and $r$ = `min_lr_ratio`. The
# learning rate at step $s$ is `lr × lr_at(s, config)`. The Trainer hands `lr_at` to torch's `LambdaLR`;
# the check below steps a `LambdaLR` through the shipped model's configured schedule and compares. The
# multipliers it prints end with the configured run's last step, on the floor $r$; the line after them
# says where the shipped run actually stopped (the red line of the plot): a run that completes its
# configured steps ends its cosine on that floor. §12 says how the number of steps was fitted to the
# run's time budget.

# %%
ddpm_teach.course.section("6. Learning rate")
probe = torch.nn.Parameter(torch.zeros(1))
probe_opt = torch.optim.SGD([probe], lr=shipped_train.lr)
scheduler = torch.optim.lr_scheduler.LambdaLR(probe_opt, lambda s: lr_at(s, shipped_train))
lrs = []
for step in range(shipped_train.steps):
    lrs.append(probe_opt.param_groups[0]["lr"])         # the lr used by optimizer step `step`
    probe_opt.step()
    scheduler.step()
torch.testing.assert_close(torch.tensor(lrs, dtype=torch.float64),
                           torch.tensor([shipped_train.lr * lr_at(s, shipped_train) for s in range(shipped_train.steps)],
                                        dtype=torch.float64))
print("LambdaLR's learning rates = lr × lr_at(step) at all", shipped_train.steps, "steps")
for step in (0, shipped_train.warmup_steps - 1, shipped_train.warmup_steps, shipped_train.steps // 2, shipped_train.steps - 1):
    print(f"step {step:5d}: multiplier {lr_at(step, shipped_train):.4f}, lr {lrs[step]:.2e}")
print(f"the shipped run stopped after {ckpt['step']} of its {shipped_train.steps} configured steps")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4.0))
ax.plot(range(shipped_train.steps), lrs, label=f"lr × lr_at (W={shipped_train.warmup_steps}, S={shipped_train.steps}, "
                                             f"r={shipped_train.min_lr_ratio})")
ax.axvline(shipped_train.warmup_steps, color="gray", linestyle=":", label="end of warm-up")
ax.axhline(shipped_train.lr * shipped_train.min_lr_ratio, color="gray", linestyle="--", linewidth=0.8, label="floor lr·r")
ax.axvline(ckpt["step"], color="C3", linewidth=1, label=f"the shipped run stopped here (step {ckpt['step']})")
ax.set_xlabel("optimizer step")
ax.set_ylabel("learning rate")
ax.set_title("The shipped run's configured learning-rate schedule")
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)   # below the axes: covers no line
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 7. Gradient clipping
#
# One unlucky batch can produce a huge gradient, and the step it causes can undo much of the training.
# **Clipping by the global norm** (`--grad-clip`, 1.0 by default) rescales the gradient of all parameters
# together when its norm $\lVert g\rVert_2$ exceeds $c$:
#
# $$g \leftarrow g \cdot \min\Big(1, \frac{c}{\lVert g\rVert_2}\Big).$$
#
# The direction is kept, only the length is capped. Late in training the gradient norm is usually below
# the default $c = 1$ (the trained model's value for the batch of §5 is printed below), and clipping then
# does nothing: it is a guard against rare spikes, not a constant change. To see it act, we clip the
# gradients of §5 at a quarter of their norm, by hand and with `torch.nn.utils.clip_grad_norm_`, which
# `train_step` calls (after `scaler.unscale_`, so that it sees the true gradients):

# %%
ddpm_teach.course.section("7. Gradient clipping")
grads = [g.clone() for g in grads_big]
total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))   # ‖g‖₂ over all
clip = 0.25 * total_norm.item()                  # c: a threshold this gradient exceeds
clipped_by_hand = [g * min(1.0, clip / (total_norm.item() + 1e-6)) for g in grads]

for p, g in zip(net.parameters(), grads_big):
    p.grad = g.clone()
norm_before = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)      # returns the norm before clipping
torch.testing.assert_close(norm_before, total_norm)
for p, g in zip(net.parameters(), clipped_by_hand):
    torch.testing.assert_close(p.grad, g)
norm_after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in net.parameters()]))
cosine = F.cosine_similarity(torch.cat([g.flatten() for g in grads_big]).double(),
                             torch.cat([p.grad.flatten() for p in net.parameters()]).double(), dim=0)
print("clip_grad_norm_ matches the formula by hand")
print("norm after clipping = c:", math.isclose(norm_after.item(), clip, rel_tol=1e-4),
      "| direction unchanged (cosine = 1):", math.isclose(cosine.item(), 1.0, abs_tol=1e-5))

# %%
# NBVAL_IGNORE_OUTPUT
print(f"‖g‖₂ of the trained model on the batch of §5: {norm_before.item():.4f} (the Trainer clips at "
      f"{shipped_train.grad_clip}); clipped at c = {clip:.4f}: {norm_after.item():.4f}")

# %% [markdown]
# ## 8. Checkpoints and an exact resume
#
# Training runs stop: a Colab session ends, a job hits its time limit, a machine restarts. A checkpoint
# must hold everything the run needs to continue **as if it had never stopped**, not merely the model:
#
# | in the checkpoint | why |
# |---|---|
# | `model`, `ema`, `ema_n_averaged` | the weights, and the EMA with its update count (its warm-up) |
# | `optimizer` | AdamW's moment estimates; without them the first steps after a resume are a different optimizer |
# | `lr_scheduler`, `step` | where in the warm-up and cosine the run is |
# | `scaler` | the fp16 loss scale |
# | `rng_per_rank` | the state of the generator that draws $t$, $\varepsilon$ and label dropout, and of torch's global RNG (dropout): one entry per process (a single one without DDP) |
# | `model_config`, `schedule`, `train_config`, `dataset` | plain data to rebuild the run, loadable with `torch.load(weights_only=True)` |
# | `loss_history` | the curve so far |
#
# The batch at step $k$ is a pure function of (seed, $k$) (`BatchOrder`: one seeded permutation per
# epoch), so nothing about the data order needs saving. `save_checkpoint` writes to a temporary file and
# renames it over the old one, so a crash mid-write leaves the last good checkpoint intact.
#
# Stopping a run on purpose is safe too. Ctrl-C (or `kill`, which sends SIGTERM) during `Trainer.train`
# does not cut a step in half: the runner finishes the step under way, saves the checkpoint, and then
# raises `KeyboardInterrupt`, so the run resumes exactly from a whole step. A second Ctrl-C stops at
# once without saving, and the last checkpoint on disk is then the one to resume from. (Under DDP
# the processes do not save on an interrupt either; they resume from the last periodic checkpoint.)
#
# The test: a tiny UNet trained for $2k$ steps without a break, against the same run stopped after $k$
# steps, saved, rebuilt from the file by `Trainer.resume`, and trained for $k$ more.

# %%
ddpm_teach.course.section("8. Checkpoints and resume")
TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(14,), norm_groups=8)
tiny_data = data.subset(range(256))
print(tiny_data)


def tiny_config(out_dir: Path) -> TrainConfig:
    return TrainConfig(steps=2 * RESUME_K, batch_size=8, lr=1e-3, warmup_steps=2, ema_decay=0.99, seed=0,
                       checkpoint_every=0, log_every=1, out_dir=str(out_dir))


with timed("the resume demonstration"):
    # A: 2k steps without a break
    straight = Trainer(tiny_config(WORK_DIR / "straight"), TINY, data=tiny_data)
    straight.train(progress=False)

    # B: k steps, save (train() saves at the end), forget everything, rebuild from the file, k more
    interrupted = Trainer(tiny_config(WORK_DIR / "interrupted"), TINY, data=tiny_data)
    interrupted.train(steps=RESUME_K, progress=False)
    saved_path = interrupted.checkpoint_path
    del interrupted
    resumed = Trainer.resume(saved_path, data=tiny_data)      # pass the same data: batches are indices into it
    resumed_at = resumed.step
    resumed.train(progress=False)

print(f"tiny UNet: {straight.model.num_parameters():,} parameters; resumed at step {resumed_at // RESUME_K}·k of "
      f"{resumed.config.steps // RESUME_K}·k")
print("checkpoint holds:", sorted(load_checkpoint(saved_path, kind="diffusion")))

# %%
print("loss histories identical:", resumed.loss_history == straight.loss_history)
print("weights identical:       ", all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                                       straight.model.state_dict().values())))
print("EMA weights identical:   ", all(torch.equal(a, b) for a, b in zip(resumed.ema.module.state_dict().values(),
                                                                       straight.ema.module.state_dict().values())))

# %%
# NBVAL_IGNORE_OUTPUT
print("uninterrupted:", [round(v, 5) for v in straight.loss_history])
print("resumed:      ", [round(v, 5) for v in resumed.loss_history])

# %% [markdown]
# Identical to the last bit, not just close: same weights, same optimizer state, same random draws.
# (On a GPU, some kernels are not deterministic, so there the two runs agree closely but not bit for
# bit.) On the command line the same thing is `python -m ddpm_teach train --out-dir runs/x --resume`
# (§12).

# %% [markdown]
# ## 9. When the loss becomes NaN: `NonFiniteLossError`
#
# A learning rate that is too high, fp16 without a working scaler, or a bad input can make the loss
# `inf` or `NaN`. From then on every weight the gradient reaches becomes NaN, and training silently
# produces garbage, which would then be saved over the last good checkpoint. `train_step` checks
# every loss before `backward()`, and on a non-finite one raises `NonFiniteLossError` (a
# `FloatingPointError`) before any weight changes. `Trainer.run_step` does not save then, so the
# checkpoint on disk is still the last good one, and its message gives the step and says what to try: a lower `--lr`, a smaller `--grad-clip`, or `--mixed-precision no`, then
# `--resume`.
#
# We simulate a blow-up by poisoning one weight of the resumed tiny model with a NaN:

# %%
ddpm_teach.course.section("9. NonFiniteLossError")
with torch.no_grad():
    resumed.model.conv_out.weight[0, 0, 0, 0] = float("nan")
try:
    resumed.train(steps=resumed.step + 1, progress=False)
except NonFiniteLossError as error:
    print(type(error).__name__, "(a FloatingPointError):", str(error).split(" at step")[0])
on_disk = load_checkpoint(resumed.checkpoint_path, kind="diffusion")
print("the checkpoint on disk is still finite:", all(torch.isfinite(v).all().item() for v in on_disk["model"].values()))

# %% [markdown]
# ## 10. A short training run on this CPU, and the shipped model
#
# Now the real thing, in miniature: the shipped model's architecture, trained from scratch by `Trainer`
# with a progress bar, for `SHORT_RUN_STEPS` steps (150 at full size, a handful at CI size; the timer
# prints how long they took). The learning rate is the shipped one, with a warm-up shortened to fit. A callback samples a few
# images from the EMA weights at three points during the run, with the same starting noise each time.

# %%
ddpm_teach.course.section("10. Short run and shipped model")
short_config = TrainConfig(steps=SHORT_RUN_STEPS, batch_size=32, lr=shipped_train.lr,
                           warmup_steps=max(1, SHORT_RUN_STEPS // 8), ema_decay=shipped_train.ema_decay,
                           grad_clip=shipped_train.grad_clip, seed=0, checkpoint_every=0, log_every=10,
                           out_dir=str(WORK_DIR / "short_run"))
snapshot_at = [math.ceil(SHORT_RUN_STEPS / 4), math.ceil(SHORT_RUN_STEPS / 2), SHORT_RUN_STEPS]   # three steps
snapshots = {}


def take_snapshot(trainer: Trainer, loss: float) -> None:
    """Called after every step: at a few steps, sample SNAPSHOT_N images from the EMA weights."""
    if trainer.step in snapshot_at:
        snapshots[trainer.step] = sample(trainer.ema.module, DDIMSampler(schedule, steps=20), SNAPSHOT_N,
                                         generator=torch.Generator().manual_seed(0), progress=False)


short = Trainer(short_config, shipped_config, data=data)
print(f"short run: batch {short_config.batch_size}, lr {short_config.lr}, {short.model.num_parameters():,} parameters")

# %%
# NBVAL_IGNORE_OUTPUT
with timed("the short training run"):
    short.train(callback=take_snapshot)
print(f"first loss {short.loss_history[0]:.3f}, mean of the last 10: {np.mean(short.loss_history[-10:]):.3f}")

# %%
fig, (ax_short, ax_shipped) = plt.subplots(1, 2, figsize=(11, 3.5))
plot_loss_curve(short.loss_history, smooth=0.9, ax=ax_short)
ax_short.set_title(f"short run: {len(short.loss_history)} steps, batch {short_config.batch_size}")
plot_loss_curve(ckpt["loss_history"], smooth=0.9, ax=ax_shipped)   # the same smoothing on both sides
ax_shipped.set_title(f"shipped model: {len(ckpt['loss_history'])} steps, batch {shipped_train.batch_size}")
low = min(ax_short.get_ylim()[0], ax_shipped.get_ylim()[0])
high = max(ax_short.get_ylim()[1], ax_shipped.get_ylim()[1])
for ax in (ax_short, ax_shipped):
    ax.set_ylim(low, high)                     # the same y axis, to compare
fig.tight_layout()
plt.show()

# %% [markdown]
# Both curves start at 1 (a fresh UNet predicts $\hat\varepsilon = 0$, §1), drop fast at first, and
# then fall slowly for a long time. The raw loss (faint) jumps from batch to batch
# because every batch draws different $t$'s (§2); the smoothed line (an EMA of the loss, bias-corrected)
# shows the trend.
#
# Samples from both, with DDIM (`SAMPLE_STEPS` steps, 50 at full size, deterministic; notebook 06), from
# the **same** starting noise:

# %%
# NBVAL_IGNORE_OUTPUT
sampler = DDIMSampler(schedule, steps=SAMPLE_STEPS)
with timed("sampling both models"):
    short_samples = sample(short.ema.module, sampler, SAMPLE_N, generator=torch.Generator().manual_seed(0), progress=False)
    shipped_samples = sample(shipped, sampler, SAMPLE_N, generator=torch.Generator().manual_seed(0), progress=False)

# %%
fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 3.4))
show_images(short_samples, nrow=8, ax=ax_a, title=f"short run ({SHORT_RUN_STEPS} steps), EMA weights")
show_images(shipped_samples, nrow=8, ax=ax_b, title=f"shipped model (step {ckpt['step']}), EMA weights")
fig.tight_layout()
plt.show()

# %% [markdown]
# How much training each model had, in optimizer steps and in images seen:

# %%
# NBVAL_IGNORE_OUTPUT
for name, steps, batch in (("short run", len(short.loss_history), short_config.batch_size),
                           ("shipped  ", ckpt["step"], shipped_train.batch_size)):
    print(f"{name}: {steps:5d} steps × {batch} images = {steps * batch:7,} images, "
          f"{steps * batch / len(data):.2f} passes over the {len(data):,} training images")
print(f"the shipped model had {ckpt['step'] / len(short.loss_history):.0f} times the steps of the short run, "
      f"each on {shipped_train.batch_size / short_config.batch_size:g} times the batch")

# %% [markdown]
# The short run's samples are bad: blobs with a rough clothing-like silhouette at best. That is expected and
# is not a bug. It is a teaching run: at full size it sees only a small fraction of one pass over the data,
# while the shipped model had many times the steps on a larger batch (the printout above). A diffusion
# model has to learn to denoise at every noise level, and its samples are only as good as the worst of
# those levels that the sampler passes through. The shipped model, from the same code and the same
# architecture, trained for longer (with a time budget and bf16 autocast, §12), draws mostly
# recognisable garments from the same noise: shirts, pullovers, trousers, bags, sneakers, sandals and
# ankle boots. A few are still blotchy patchworks or misshapen.

# %% [markdown]
# ## 11. A bug, or under-training?
#
# Bad samples after a short run are normal; bad samples after a long one may be a bug. Three tools tell
# them apart.
#
# **1. The loss against $t$.** Under-training leaves the shape of the curve of §2 intact: high at small
# $t$, falling towards 0 at large $t$, just higher everywhere, and dropping with more steps. A bug
# usually breaks the shape. Two signs:
# - the curve is **flat at 1**: the model ignores its input (its output is detached or multiplied by 0,
#   the learning rate is 0, the optimizer holds other parameters);
# - the loss at **large $t$ is not small**: there $\varepsilon \approx x_t$, which any working model
#   learns within a few hundred steps. If it stays high, the $x_t$ or the $t$ the model gets do not match
#   the ones the loss assumes.
#
# Below, the short run and the shipped model, and a simulated bug: the shipped model given $t/T \in [0, 1)$
# instead of the integer index (mixing the continuous-time convention of some code bases with the 0-based
# index of this one):

# %%
ddpm_teach.course.section("11. Bug or under-training")
with timed("two more loss-versus-t curves"):
    short_mse_t = mse_per_t(short.ema.module, t_grid, x0_eval, noise_eval)
    bug_mse_t = mse_per_t(shipped, t_grid, x0_eval, noise_eval, t_for_model=lambda t: t.float() / T)
plot_mse_per_t({"shipped model": (shipped_mse_t, "-"), f"short run ({SHORT_RUN_STEPS} steps)": (short_mse_t, "-"),
                "bug: shipped model given t/T": (bug_mse_t, "--")},
               title="Under-training keeps the shape; a t-mismatch bug breaks it")
plt.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
curves = {"shipped": shipped_mse_t.mean(dim=1), "short run": short_mse_t.mean(dim=1), "bug (t/T)": bug_mse_t.mean(dim=1)}
peak = int(curves["bug (t/T)"].argmax())                  # where the buggy curve is highest
for i in (0, peak, len(t_grid) - 1):
    print(f"t = {t_grid[i]:4d}: " + "  ".join(f"{name} {mse[i].item():.4f}" for name, mse in curves.items()))

# %% [markdown]
# At full size, the short run's curve has the right shape but is higher than the shipped one: under-training.
# The buggy curve is fine at $t = 0$, where $t/T = 0$ happens to be correct. Then it rises while the
# working curves fall (the printout gives its highest point), and at $t = T-1$ it is still far above the
# shipped model's (the last line): the large-$t$ loss is not small. (At CI size the short run has only a
# few steps and its curve is still close to the flat line at 1.)
#
# **2. Samples over training.** With the same starting noise, samples at successive points of a healthy
# run drift from noise to blobs to shapes. A run whose samples stay pure noise, go all black or all white
# (saturated by the $[-1, 1]$ clipping), or stop changing while the loss falls, has a bug: often a
# mismatch between training and sampling (schedule, index, the sign or scale of $\varepsilon$).

# %%
fig, axes = plt.subplots(1, len(snapshot_at) + 1, figsize=(3.0 * (len(snapshot_at) + 1), 2.3), squeeze=False)
for ax, step in zip(axes[0], snapshot_at):
    show_images(snapshots[step], nrow=SNAPSHOT_N // 2, ax=ax, title=f"short run, step {step}")
show_images(sample(shipped, DDIMSampler(schedule, steps=20), SNAPSHOT_N, generator=torch.Generator().manual_seed(0),
                   progress=False), nrow=SNAPSHOT_N // 2, ax=axes[0, -1], title=f"shipped, step {ckpt['step']}")
fig.suptitle("Samples during training: same noise, DDIM 20 steps, EMA weights")
fig.tight_layout()
plt.show()

# %% [markdown]
# **3. The classifier-FID, with its floor.** Notebook 05 introduces the measure: the Fréchet distance
# between features of samples and of the Fashion-MNIST test set, from a classifier trained by the package.
# Lower is better, but it never reaches 0: even real training images score a *floor* against the test set,
# and that floor grows as the number of images $N$ shrinks. So an FID means something only next to the
# floor at the same $N$. A model that improves with training moves towards the floor; a bug stays far from
# it whatever the loss does. With our few samples the numbers are rough, but the order is clear (full size
# only: the evaluator's first load computes the test set's features, which takes several seconds):

# %%
# NBVAL_IGNORE_OUTPUT
if SCORE_SAMPLES:
    from ddpm_teach.evaluation import Evaluator

    with timed("loading the evaluator and scoring"):
        evaluator = Evaluator.load()
        for name, images in (("short run", short_samples), ("shipped  ", shipped_samples)):
            print(name, Evaluator.format_scores(evaluator.score(images)))
else:
    print("skipped at CI size; run the notebook at full size (the default) to see the scores")

# %% [markdown]
# A checklist, from the cheapest check to the most expensive:
# 1. **Overfit one batch.** Train on one fixed batch for a few hundred steps; the loss must fall far
#    below the curve of a normal run. If it cannot, the model, the loss or the optimizer is broken.
# 2. **Loss against $t$** (above): right shape? Small at large $t$?
# 3. **The loss curve:** starts at 1 for a fresh UNet (its output layer starts at zero), falls fast, then
#    slowly. A curve that rises, or NaNs (`NonFiniteLossError`), calls for a lower learning rate or
#    more warm-up.
# 4. **Samples over training** from fixed noise, with the EMA weights: getting better?
# 5. **Classifier-FID** next to its floor at the same $N$: moving towards it?
# 6. **Sample with the true noise.** Replace the model by an oracle that returns the true $\varepsilon$
#    (notebook 06 does this for DDIM): the sampler must then recover $x_0$. If it does not, the bug is
#    in the sampler, not in training.

# %% [markdown]
# ## 12. Training the real thing
#
# Everything above is the runner `ddpm_teach.trainer.Trainer` around the step `ddpm_teach.training.train_step`,
# and the command line drives the same class, with one flag per field of `TrainConfig` and `UNetConfig`
# (`python -m ddpm_teach train --help` lists them all). The shipped model was trained with the CPU
# preset, within its 15-minute budget on the idle 2-core Intel Xeon with AMX (`checkpoints/README.md`
# gives the exact history):
#
# ```bash
# python -m ddpm_teach train --preset cpu-fast
# ```
#
# `--preset cpu-fast` sets the architecture of this notebook (`--base-channels 32 --channel-mults 1 2 2
# --num-res-blocks 1 --attention-resolutions 7 --dropout 0`), batch 64, lr 1e-3 with 100 warm-up steps,
# EMA decay 0.995, and a budget of `--max-minutes 15`. How it computes is measured, not assumed: the
# preset's `--probe-setup` times a few steps in float32 and in bf16 autocast (only where the CPU computes
# bf16 natively, with AMX or AVX-512-BF16; elsewhere bf16 is emulated and many times slower), with and
# without channels_last, then `torch.compile` of the fastest, and trains with the winner. It prints every
# candidate's images per second and keeps them in the checkpoint (`setup_probe`). A setup must be at
# least 3% faster than a simpler one (eager before compiled, float32 before bf16) to be chosen, so that
# timing noise does not pick a complication. The winner depends on the CPU and on the network: on a
# Xeon with AMX this notebook's model trained fastest with bf16 + torch.compile; on an AMD EPYC with
# AVX-512-BF16 but no AMX, torch.compile made the same bf16 training slower; which is why no fixed choice
# is right everywhere. `--compile` or `--no-compile` (and the other two flags) decide for yourself. The
# probe's minute or two (mostly compiling) is paid out of the budget, so with a budget under 15 minutes the
# probe leaves `torch.compile` out: a compile that takes over a minute cannot pay for itself in so short a
# run. With a budget, the Trainer (its `TimeBudget`) times steps 10 to 40
# and then sets `steps` to where the budget will end, so that the cosine decay of §6 finishes with it:
# the steps of §0's printout, and the end of the schedule plotted in §6. Flags given next to the preset
# override it, e.g. `--max-minutes 60`.
#
# The same options can live in a file: a TOML file whose keys are the flags' names. `configs/` holds a
# tested example, a model of this notebook's size trained for a fixed number of steps instead of a
# time budget; flags given as well win over the file:
#
# ```bash
# python -m ddpm_teach train --config configs/fashion_mnist_small.toml
# python -m ddpm_teach train --config configs/fashion_mnist_small.toml --steps 200   # a quick try
# ```
#
# Every `train` writes its resolved options (the file, the preset, the flags and the defaults, merged)
# next to its checkpoint as `{out-dir}/config.toml`, so that `--config runs/.../config.toml` repeats
# the run.
#
# On a GPU, train a larger model for longer (`--preset gpu` starts from the course's base-64 UNet at batch
# 256 with `torch.compile`); mixed precision is picked automatically (`--mixed-precision
# auto`: bf16 where supported, else fp16 with the scaler):
#
# ```bash
# python -m ddpm_teach train --dataset fashion_mnist --out-dir runs/fmnist_big \
#     --steps 20000 --batch-size 128 --lr 2e-4 --warmup-steps 1000 --ema-decay 0.999
# ```
#
# Stopped? Ctrl-C or `kill` ends the step under way and saves (§8). Continue exactly where it left off
# (from `{out-dir}/checkpoint.pt`, written every `--checkpoint-every` steps, at the end and on an
# interrupt); `--steps` may extend the run:
#
# ```bash
# python -m ddpm_teach train --out-dir runs/fmnist_big --resume                # continue to the planned 20000 steps
# python -m ddpm_teach train --out-dir runs/fmnist_big --resume --steps 40000  # or train longer
# ```
#
# Several GPUs, with DistributedDataParallel (each process takes `--batch-size` images per micro-batch):
#
# ```bash
# torchrun --nproc_per_node=4 -m ddpm_teach train --dataset fashion_mnist --out-dir runs/fmnist_ddp --steps 20000
# ```
#
# Then sample, score, and keep only what sampling needs (the EMA weights and the configs, a few MB):
#
# ```bash
# python -m ddpm_teach sample --checkpoint runs/fmnist_big/checkpoint.pt --n 64 --out grid.png
# python -m ddpm_teach export --checkpoint runs/fmnist_big/checkpoint.pt --out checkpoints/my_model.pt
# ```
#
# Other data: `--dataset mnist` or `--dataset cifar10` (with `--download` when online), or a folder of
# images with one sub-folder per class.

# %% [markdown]
# ### How long do I have to train?
#
# `benchmarks/time_to_quality.py` answers it for this notebook's model: it trains with `--preset
# cpu-fast`, copies the EMA weights every few minutes, and scores every copy with DDIM-50 and the
# classifier-FID of §11 (at the same $N$ as its floor). Beside ours it trains diffusers' `UNet2DModel`
# laid out exactly like our UNet (the same levels, GroupNorm groups, heads and initialisation, the
# same parameter count), with the same `Trainer`: the same batches, $t$ and $\varepsilon$ draws,
# learning-rate function and EMA, each side in the setup its own `--probe-setup` picked on the machine
# (described at the start of this section). Below, "peer" is that diffusers network. The cell reads the
# numbers from the saved run: its first line is the command, its second the CPU, $N$, the floor and the
# sampler (its precision, bf16 or fp32, is the one the CPU computes natively).
#
# Two things to keep in mind when reading it. Every minute counts: each side's probe and compile come
# out of its budget, so the first point is late for the side that compiled longer. And FID depends on
# $N$ (§11): compare the points of this curve with each other, not with §11's scores, which use far
# fewer images and so sit much higher.

# %%
ddpm_teach.course.section("12. Training the real thing")
import json

from IPython.display import Image, display

ttq_path = Path(ddpm_teach.__file__).resolve().parent.parent / "benchmarks" / "results" / "time_to_quality.json"
if ttq_path.exists():
    ttq = json.loads(ttq_path.read_text())
    print(f"{ttq['command']}\n({ttq['cpu']}, {ttq['threads']} threads; N={ttq['n']} per point, "
          f"real-vs-real floor {ttq['floor']:.2f}; {ttq['sampler']})")
    for side, run in ttq["runs"].items():
        first, last = ttq["curves"][side][0], ttq["curves"][side][-1]
        print(f"  {side:26s} {run['setup']}: {run['steps']:,} steps; FID {first['fid']:.1f} after "
              f"{first['minutes']:.0f} min, {last['fid']:.2f} after {last['minutes']:.0f} min")
    if ttq.get("ratio"):
        times = ttq["minutes_to_target"]
        print(f"  target FID {ttq['target']:g} (the lowest FID, rounded up, that both sides reach); first snapshot "
              "at or under it: " + ", ".join(f"{side} {m:.1f} min" for side, m in times.items())
              + f" (ratio peer/ours {ttq['ratio']:.2f})")
    display(Image(filename=str(ttq_path.with_suffix(".png"))))
else:
    print(f"{ttq_path} is not here (the benchmarks folder comes with a clone of the repository)")

# %% [markdown]
# Read the curve for two things. First, how fast FID falls in the first minutes: each side's first
# point has also paid its probe and compile, and the warm-up of §6 and the EMA of §3 both delay it.
# Second, whether it has flattened by the end: while the last points still fall, more minutes still
# pay; once they stop falling, a larger model or a GPU is the next step. And read the two sides
# against each other step by step as well as minute by minute (the steps are printed): the peer is
# our network written in diffusers' code, so where one leads at equal minutes, the lead is the speed
# of its setup, not a better network.

# %% [markdown]
# ## Exercises
#
# Each exercise is checked with one call, which prints `Correct!` or a hint.
#
# **Exercise 1 (the loss of Algorithm 1).** Write `algorithm1_loss(model, schedule, x0, t, noise)`: it
# returns $L_\text{simple}$ (eq. 14) for one batch, as a scalar tensor that `backward()` can use. Use only
# `schedule.alphas_cumprod` (float64, shape $[T]$), torch, and the model; not `diffusion_loss` or
# `q_sample`. The check runs it on a small model with random weights and compares it with
# `diffusion_loss`.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 1: uncomment, complete and run.
# def algorithm1_loss(model, schedule, x0, t, noise):
#     ...
#
# ddpm_teach.exercises.nb04.check_algorithm1_loss(algorithm1_loss)

# %% [markdown]
# **Exercise 2 (the learning-rate multiplier).** A run is configured with
# `TrainConfig(steps=1000, warmup_steps=100, min_lr_ratio=0.1, lr=2e-4)`. What is the learning-rate
# *multiplier* `lr_at(step, config)` at steps 0, 400 and 1000? (Steps are 0-based, so the run's last step is 999; the formula still gives a
# value at 1000.) Work it out from the formula of §6, then check it (without calling `lr_at`, which would
# give it away).
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 2: uncomment, fill in and run.
# m0, m400, m1000 = ..., ..., ...
# ddpm_teach.exercises.nb04.check_lr_multipliers([m0, m400, m1000])

# %% [markdown]
# **Exercise 3 (the EMA).** With `ema_decay=0.999` and the warm-up of §3: (a) what decay $d_n$ does the
# update after $n = 49$ earlier updates use? (b) Late in a long run, over about how many recent steps does
# the EMA average (the window $1/(1-d)$)?
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click to show).

# %%
# Your answer to exercise 3: uncomment, fill in and run.
# d_49, window_late = ..., ...
# ddpm_teach.exercises.nb04.check_ema(d_49, window_late)

# %% [markdown]
# ## Summary
#
# - **Algorithm 1:** draw $x_0$, a 0-based $t$ uniformly from $\{0, \dots, T-1\}$ (index 0 included), and
#   $\varepsilon$; form $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon$ (eq. 4); step on
#   $\lVert\varepsilon - \varepsilon_\theta(x_t, t)\rVert^2$ (eq. 14). `diffusion_loss` is exactly that
#   loss, and `train_step`, tagged with the paper's line numbers, is that step: both matched the
#   hand-written step. The runner `Trainer` (in `ddpm_teach.trainer`) is lines 1 and 6, the loop.
# - **The loss depends strongly on $t$:** near 0 at large $t$ (ε ≈ x_t), highest at small $t$, where the
#   noise is about one grey level. That makes training losses noisy, and their curve against $t$ is the
#   first diagnostic.
# - **EMA:** sample from $\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1-d)\theta$, with
#   $d_n = \min(d, \frac{1+n}{10+n})$ so that short runs do not drag the random start along; the window is
#   about $n/9$ steps early and $1/(1-d)$ late. `make_ema` uses torch's `AveragedModel`.
# - **Mixed precision:** autocast runs the heavy operations in 16 bits and keeps the weights in float32.
#   bf16 has float32's range and needs nothing more; fp16 underflows small gradients, so `GradScaler`
#   scales the loss, unscales before clipping and skips steps that overflow. On this CPU, bf16 changed the
#   model's output by about bf16's precision.
# - **Gradient accumulation** of $k$ micro-batches with the loss divided by $k$ gives the gradient of the
#   big batch, exactly up to float rounding (GroupNorm, no BatchNorm).
# - **LR:** linear warm-up $(s+1)/W$, then a cosine from 1 to `min_lr_ratio` (`lr_at`); **clipping**
#   caps the global gradient norm.
# - **Checkpoints** hold the model, EMA, optimizer, scheduler, scaler, RNG states and loss history; a resumed
#   run repeated the uninterrupted one bit for bit. Ctrl-C or `kill` ends the step under way and saves.
#   A NaN loss raises `NonFiniteLossError` and leaves the
#   last good checkpoint alone.
# - **A short CPU run gives bad samples, and that is under-training, not a bug:** its loss-versus-$t$ curve
#   has the right shape, its samples improve over training, and its FID sits further from the floor than the
#   shipped model's. The shipped model is the same recipe, trained for longer (a 15-minute budget with
#   bf16 autocast and `torch.compile`; §0 and §10 print its steps).
#
# **Next:** notebook 05 samples from the trained model with Algorithm 2.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises, one hidden cell each: double-click a cell (or click its title) to
# show the code. Try your own answer first.


# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
def algorithm1_loss(model, schedule, x0, t, noise):
    alpha_bar = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)      # ᾱ_t, (B, 1, 1, 1)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise          # eq. 4
    return ((noise - model(x_t, t)) ** 2).mean()                          # eq. 14


ddpm_teach.exercises.nb04.check_algorithm1_loss(algorithm1_loss)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
W, S, r = 100, 1000, 0.1
m0 = (0 + 1) / W                                                 # inside the warm-up
p = (400 - W) / (S - W)                                          # 1/3 of the way through the cosine
m400 = r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))
m1000 = r + (1 - r) * 0.5 * (1 + math.cos(math.pi * min(1.0, (1000 - W) / (S - W))))   # the floor
ddpm_teach.exercises.nb04.check_lr_multipliers([m0, m400, m1000])

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
d_49 = min(0.999, (1 + 49) / (10 + 49))
window_late = 1 / (1 - 0.999)
ddpm_teach.exercises.nb04.check_ema(d_49, window_late)

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
# ← [03 · The UNet](03_unet.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [05 · DDPM sampling →](05_ddpm_sampling.ipynb)
