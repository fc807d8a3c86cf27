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
# # 11 · Flow matching: a straight path from data to noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/11_flow_matching.ipynb)
#
# ← [10 · Latent diffusion](10_latent_diffusion.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [12 · Your own images →](12_your_own_images.ipynb)
#
# Notebook 09 ended with sampling as "solve an ODE from noise to data", and the ODE of a DDPM model
# is the one its noise schedule happens to give. **Flow matching** starts from the other end: choose
# the simplest path there is between a data image and a noise image, the straight line, and train the
# network to predict its velocity. Sampling is then the ODE $dx/dt = v_\theta(x, t)$, solved with
# Euler's or Heun's method. The idea came in three papers at once: Lipman et al. 2023, *Flow Matching
# for Generative Modeling* ([arXiv:2210.02747](https://arxiv.org/abs/2210.02747)); Liu et al. 2023,
# *Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow*
# ([arXiv:2209.03003](https://arxiv.org/abs/2209.03003)); Albergo & Vanden-Eijnden 2023, *stochastic
# interpolants*. Stable Diffusion 3 (Esser et al. 2024, *Scaling Rectified Flow Transformers*,
# [arXiv:2403.03206](https://arxiv.org/abs/2403.03206)) trains this way, with two changes that §8 looks at.
#
# The course ships a flow-matching model, `checkpoints/fashion_mnist_flow.pt`: the same UNet as the
# ε-model `fashion_mnist_ddpm.pt`, trained with the same recipe, only the target changed. That makes
# a fair comparison possible (§5), and a surprise: deterministic DDIM on the ε-model *is* flow Euler,
# in other coordinates (§7).
#
# **Prerequisites.** Notebook 04 (training), 06 (DDIM) and 09 (the probability-flow ODE, Euler, Heun, NFE).
#
# **Learning goals.** By the end you can
# 1. write the straight path $x_t = (1-t)\,x_0 + t\,\varepsilon$, $t \in [0, 1]$, and its velocity
#    $v = \varepsilon - x_0$, and compare it with DDPM's curved path $\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$;
# 2. explain why a network trained on the velocity of *one* pair $(x_0, \varepsilon)$ at a time learns
#    the *average* velocity $\mathbb E[\varepsilon - x_0 \mid x_t]$, and why the ODE paths it gives are curved;
# 3. compute the flow-matching loss $\lVert(\varepsilon - x_0) - v_\theta(x_t, t)\rVert^2$ by hand and
#    train a small model with it;
# 4. sample with Euler's and Heun's method in $t$, and count their network evaluations (NFE);
# 5. read a measured comparison of flow matching and diffusion at an equal budget (classifier-FID
#    against NFE, with $N$ and the real-vs-real floor);
# 6. measure how straight the sampling paths are (Liu et al.'s straightness $S$);
# 7. derive that deterministic DDIM on an ε-model is Euler's method on a straight-path ODE, and check it numerically;
# 8. say what SD3 changed: logit-normal training times and a shifted step grid.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX: not measured (this notebook was written on the AMD machine only).
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-07): 108-123 s (two runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 21-24 s (AMD, 2026-12-07). Slower with fewer cores,
#   no native bf16 or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - §5's FID table is read from `benchmarks/results/flow_vs_diffusion.json`, not computed here (its benchmark samples 1000 images per row).
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest) changes how many images the
# figures show, how long §3's training run is, and how many steps and images §4, §6, §7 and §8 use.
# The maths cells (the path, the toy model, the loss check, the time embedding, the step checks, the
# grids, the exercises) print the same at both sizes and are checked by `pytest --nbval`; cells whose
# output depends on the size, the trained weights or the benchmark file are marked `# NBVAL_IGNORE_OUTPUT`.

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
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import ddpm_teach.exercises.nb11
from ddpm_teach.checkpoint import checkpoint_objective, load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, repo_root, timed
from ddpm_teach.data import load_dataset
from ddpm_teach.devices import pick_device
from ddpm_teach.flow import (EpsAsVelocity, FlowEulerSampler, FlowHeunSampler, ddpm_time_to_flow, ddpm_to_flow_scale,
                             flow_eps_from_v, flow_loss, flow_time_grid, flow_x0_from_v, interpolate, network_time,
                             path_straightness, sample_t, straightness, trajectory_to_flow, velocity_target)
from ddpm_teach.plotting import plot_loss_curve, show_images
from ddpm_teach.samplers import DDIMSampler, sample
from ddpm_teach.trainer import Trainer
from ddpm_teach.training import TrainConfig
from ddpm_teach.unet import UNetConfig, timestep_embedding

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" or "ci"
DEVICE = pick_device("auto")               # a GPU if there is one (e.g. in Colab), else the CPU
N_SHOW = by_size(full=8, ci=4)             # images per row in the figures
TRAIN_STEPS = by_size(full=300, ci=30)     # §3: optimizer steps of the short training run
EULER_STEPS = by_size(full=(1, 2, 4, 8, 16, 32), ci=(1, 4))   # §4: Euler step counts (Heun at the same even NFE)
REFERENCE_STEPS = by_size(full=32, ci=4)   # §4: Heun steps (2·steps NFE) of the reference solve
STRAIGHT_N = by_size(full=16, ci=4)        # §6: images whose paths give the straightness S
STRAIGHT_STEPS = by_size(full=32, ci=8)    # §6: solver steps of those paths
BRIDGE_STEPS = by_size(full=20, ci=5)      # §7: DDIM steps of the numerical check
LOSS_T_IMAGES = by_size(full=64, ci=8)     # §8: images per time on the loss-against-t curve
WORK_DIR = Path(tempfile.mkdtemp(prefix="ddpm_teach_nb11_"))   # §3's short run writes its checkpoint here


def generator(seed: int) -> torch.Generator:
    """A fresh CPU generator: the only source of randomness of each draw."""
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def predict_v(x: torch.Tensor, t: float) -> torch.Tensor:
    """The shipped flow model's v̂(x, t) for a batch x [B, 1, 28, 28] at one flow time t ∈ [0, 1], on the CPU.
    The UNet sees the time as t·999 (§2). (``flow_model`` is loaded in the next cell.)"""
    t_batch = network_time(torch.full((len(x),), float(t), device=DEVICE))
    return flow_model(x.to(DEVICE), t_batch).cpu()


# %%
flow_model, _, flow_ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_flow.pt"), device=DEVICE)
eps_model, schedule, eps_ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_ddpm.pt"), device=DEVICE)
for name, model, ckpt in (("fashion_mnist_flow.pt", flow_model, flow_ckpt), ("fashion_mnist_ddpm.pt", eps_model, eps_ckpt)):
    print(f"{name:<22} predicts {checkpoint_objective(ckpt)!r:<7} UNet with {model.num_parameters():,} parameters")
print("the ε-model's schedule:", schedule)

test_data = load_dataset("fashion_mnist", train=False)
x0_real, _ = test_data.batch(list(range(N_SHOW)))       # (N_SHOW, 1, 28, 28) in [-1, 1]

# %% [markdown]
# The two networks have the same architecture and the same number of parameters; the checkpoint's
# `train_config["objective"]` says what each one predicts (`checkpoint_objective` reads it): `'eps'`,
# the noise ε of notebooks 04-09, or `'flow'`, the velocity of this notebook.
#
# ## 1. The straight path and its velocity
#
# Take a data image $x_0$ and a noise image $\varepsilon \sim \mathcal N(0, I)$ and join them by a
# straight line, walked at constant speed as the time $t$ runs from 0 to 1:
#
# $$x_t = (1-t)\,x_0 + t\,\varepsilon, \qquad t \in [0, 1], \qquad
# v = \frac{dx_t}{dt} = \varepsilon - x_0 .$$
#
# $t = 0$ is the data and $t = 1$ the noise, the same direction as DDPM's index $t = 0 \dots T-1$. (Lipman et
# al. and Liu et al. run their time the other way, from noise at 0 to data at 1; SD3 and this course
# use the direction above. Lipman et al.'s "optimal transport" path (their §4.1, Example II) is this line
# with $\sigma_{\min} = 0$; Liu et al. call it *rectified flow*.) The velocity $v$ does not depend on $t$:
# every step along the line moves the same way. Unlike DDPM's integer index, $t$ is a real number:
# `ddpm_teach.flow` calls it the **flow time**.
#
# `flow.interpolate(x0, noise, t)` computes $x_t$ for a batch and `flow.velocity_target(x0, noise)`
# the velocity. The cell checks both against the formulas, the velocity as a finite difference of
# the path.

# %%
ddpm_teach.course.section("1. The straight path")
PATH_TIMES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
x0_path = x0_real[:4]                                                     # 4 test images, (4, 1, 28, 28)
eps_path = torch.randn(x0_path.shape, generator=generator(1))             # their noise ε
along = torch.stack([interpolate(x0_path, eps_path, torch.full((4,), t)) for t in PATH_TIMES])   # (6, 4, 1, 28, 28)
for t, x_t in zip(PATH_TIMES, along):
    torch.testing.assert_close(x_t, (1 - t) * x0_path + t * eps_path)   # x_t = (1 − t)x_0 + tε

x0_64, eps_64, h = x0_path.double(), eps_path.double(), 1e-3
for t in (0.1, 0.5, 0.9):
    t_batch = torch.full((4,), t, dtype=torch.float64)
    slope = (interpolate(x0_64, eps_64, t_batch + h) - interpolate(x0_64, eps_64, t_batch)) / h   # (x_{t+h} − x_t)/h
    torch.testing.assert_close(slope, velocity_target(x0_64, eps_64))                              # = ε − x_0
print("interpolate(x_0, ε, t) = (1 − t)·x_0 + t·ε at t =", ", ".join(f"{t:g}" for t in PATH_TIMES))
print("(x_{t+h} − x_t)/h = ε − x_0 = velocity_target(x_0, ε) at t = 0.1, 0.5 and 0.9: one velocity for the whole path")

# %%
fig, ax = plt.subplots(figsize=(7, 5))
show_images(along.transpose(0, 1).reshape(-1, 1, 28, 28), nrow=len(PATH_TIMES), ax=ax)   # a row per image
ax.set_xticks([(28 + 2) * (i + 0.5) + 1 for i in range(len(PATH_TIMES))], [f"t = {t:g}" for t in PATH_TIMES])
ax.set_yticks([])
ax.tick_params(length=0)
ax.set_title("x_t = (1 − t)·x_0 + t·ε: four test images on their straight paths to noise")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Against DDPM's path.** DDPM's $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$
# (DDPM eq. 4) mixes the same two images with other weights. Plot the weight of $x_0$ against the weight
# of $\varepsilon$: the flow path's $(1-t, t)$ runs along the straight line from $(1, 0)$ to $(0, 1)$,
# DDPM's $(\sqrt{\bar\alpha_t}, \sqrt{1-\bar\alpha_t})$ along the quarter circle of radius 1
# ($\bar\alpha + (1 - \bar\alpha) = 1$: DDPM keeps the variance of $x_t$ at 1 for unit-variance data, and
# the flow path lets it dip to $(1-t)^2 + t^2 = \tfrac12$ halfway). The dotted rays through the origin
# foreshadow §7: every DDPM point, scaled by $c = 1/(\sqrt{\bar\alpha_t} + \sqrt{1-\bar\alpha_t})$,
# lands on the straight line.

# %%
t_line = torch.linspace(0, 1, 101, dtype=torch.float64)
alpha_bar = schedule.alphas_cumprod.double().cpu()                        # ᾱ_t, [T]
fig, axes = plt.subplots(1, 2, figsize=(11, 5.4))
ax = axes[0]
ax.plot(1 - t_line, t_line, color="C0", label="flow: (1 − t, t), t ∈ [0, 1]")
ax.plot(alpha_bar.sqrt(), (1 - alpha_bar).sqrt(), color="C1", label="DDPM: (√ᾱ_t, √(1 − ᾱ_t)), t = 0 … 999")
for k, t in enumerate((0, 150, 300, 450, 999)):
    data_weight, noise_weight = float(alpha_bar[t].sqrt()), float((1 - alpha_bar[t]).sqrt())
    c = 1 / (data_weight + noise_weight)
    ax.plot([0, data_weight], [0, noise_weight], ":", color="0.55", linewidth=0.9)
    ax.plot(data_weight, noise_weight, "o", color="C1", markersize=5)
    ax.plot(c * data_weight, c * noise_weight, "o", color="C0", markerfacecolor="none", markersize=6,
            label="c·(√ᾱ_t, √(1 − ᾱ_t)) lies on the line" if k == 0 else None)
    ax.annotate(f"t = {t}", (data_weight, noise_weight), textcoords="offset points", xytext=(4, 3), fontsize=8, color="C1")
ax.set_xlim(0, 1.08)
ax.set_ylim(0, 1.08)
ax.set_aspect("equal")
ax.set_xlabel("weight of x_0")
ax.set_ylabel("weight of ε")
ax.set_title("the two paths in the plane of their weights")
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
axes[1].plot(t_line, (1 - t_line) ** 2 + t_line**2, color="C0", label="flow: (1 − t)² + t²")
axes[1].axhline(1.0, color="C1", label="DDPM: ᾱ + (1 − ᾱ) = 1 at every step")
axes[1].set_xlabel("flow time t")
axes[1].set_ylabel("variance of x_t (data and noise of variance 1)")
axes[1].set_ylim(0, 1.1)
axes[1].set_title("the flow path does not preserve the variance")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(True, alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### One pair at a time, and the average velocity
#
# The network never sees the pair $(x_0, \varepsilon)$: it sees $x_t$ and $t$. Many pairs pass through
# the same $x_t$, each with its own velocity $\varepsilon - x_0$. A squared-error regression onto a
# target that varies like that learns its **conditional mean**, the **marginal velocity**
#
# $$v^*(x, t) = \mathbb E\big[\varepsilon - x_0 \,\big|\, x_t = x\big].$$
#
# This is Lipman et al.'s central result: the per-pair ("conditional") loss has the same minimiser
# and the same gradients as a regression onto $v^*$ (their Theorem 2), and the ODE $dx/dt = v^*(x, t)$
# moves the noise distribution along exactly the marginals $p_t$ of the straight-line
# interpolation (their Theorem 1), so run from $t = 1$ to $t = 0$ it turns noise into data.
#
# See it on a toy where $v^*$ is known exactly: **1-D data**, a mixture of two Gaussians at $\pm 1.5$
# with standard deviation $\delta = 0.25$. Given the component $k$, $x_t$ is Gaussian with mean $(1-t)\mu_k$
# and variance $(1-t)^2 \delta^2 + t^2$; Bayes' rule gives each component's weight, and each component's
# $\mathbb E[\varepsilon \mid x_t]$ and $\mathbb E[x_0 \mid x_t]$ are those of a Gaussian. The cell checks the
# formula against a Monte-Carlo average of $\varepsilon - x_0$ over pairs whose $x_t$ falls in a narrow
# window, then integrates the ODE with 200 small Euler steps.

# %%
TOY_MEANS = torch.tensor([-1.5, 1.5], dtype=torch.float64)      # two Gaussian components, equal weights
TOY_DELTA = 0.25                                                 # their standard deviation


def toy_data(n: int, gen: torch.Generator) -> torch.Tensor:
    """n samples of the 1-D mixture, float64 [n]."""
    k = torch.randint(0, 2, (n,), generator=gen)
    return TOY_MEANS[k] + TOY_DELTA * torch.randn(n, generator=gen, dtype=torch.float64)


def marginal_velocity(x: torch.Tensor, t: float) -> torch.Tensor:
    """v*(x, t) = E[ε − x_0 | x_t = x] for the mixture, exactly: x [n] → [n]."""
    variance = (1 - t) ** 2 * TOY_DELTA**2 + t**2                 # of x_t given the component
    diff = x[:, None] - (1 - t) * TOY_MEANS[None]                  # x − (1 − t)μ_k, (n, 2)
    weights = torch.softmax(-diff**2 / (2 * variance), dim=1)      # p(k | x_t = x): equal weights, equal variances
    eps_given_k = t / variance * diff                              # E[ε | x_t, k]
    x0_given_k = TOY_MEANS[None] + (1 - t) * TOY_DELTA**2 / variance * diff   # E[x_0 | x_t, k]
    return (weights * (eps_given_k - x0_given_k)).sum(1)


# Monte Carlo: the average of ε − x_0 over pairs with x_t near a point is v* there
gen = generator(11)
x0_mc = toy_data(1_000_000, gen)
eps_mc = torch.randn(1_000_000, generator=gen, dtype=torch.float64)
for t, point in ((0.5, 0.3), (0.8, -1.0)):
    near = ((1 - t) * x0_mc + t * eps_mc - point).abs() < 0.01
    by_average = float((eps_mc - x0_mc)[near].mean())
    exact = float(marginal_velocity(torch.tensor([point], dtype=torch.float64), t))
    assert abs(by_average - exact) < 0.05
    print(f"t = {t}, x = {point:+.1f}: average of ε − x_0 over {int(near.sum()):,} pairs ≈ {by_average:+.2f}, "
          f"v*(x, t) = {exact:+.2f}")

# the ODE dx/dt = v*(x, t) from t = 1 (noise) to t = 0, 200 Euler steps
ode_times = torch.linspace(1, 0, 201, dtype=torch.float64)
starts = torch.randn(2000, generator=generator(12), dtype=torch.float64)
ode_path = [starts]
for t_now, t_next in zip(ode_times[:-1].tolist(), ode_times[1:].tolist()):
    ode_path.append(ode_path[-1] + (t_next - t_now) * marginal_velocity(ode_path[-1], t_now))
ode_path = torch.stack(ode_path)                                  # (201, 2000)
ends, data_check = ode_path[-1], toy_data(2000, generator(13))
order_kept = bool((ends[starts.argsort()].diff() >= 0).all())
print(f"ODE end points: {float((ends > 0).double().mean()):.2f} of them in the right component (data: 0.5), "
      f"std within it {float(ends[ends > 0].std()):.2f} (data: δ = {TOY_DELTA})")
print(f"the ODE keeps the order of the points (the paths never cross): {order_kept}")

# %%
grid_x = torch.linspace(-3.2, 3.2, 161, dtype=torch.float64)
grid_t = torch.linspace(0, 1, 101, dtype=torch.float64)
variances = (1 - grid_t[:, None, None]) ** 2 * TOY_DELTA**2 + grid_t[:, None, None] ** 2           # (101, 1, 1)
density = (torch.exp(-(grid_x[None, :, None] - (1 - grid_t[:, None, None]) * TOY_MEANS) ** 2 / (2 * variances))
           / torch.sqrt(2 * math.pi * variances)).mean(-1)                                       # p_t(x), (101, 161)

fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
pairs_x0, pairs_eps = toy_data(30, generator(14)), ode_path[0, :30]
for ax in axes:
    ax.pcolormesh(grid_t.numpy(), grid_x.numpy(), density.T.numpy(), cmap="Greys", shading="auto", alpha=0.6)
    ax.set_xlabel("flow time t (0: data, 1: noise)")
    ax.set_xlim(0, 1)
for x0_i, eps_i in zip(pairs_x0.tolist(), pairs_eps.tolist()):
    axes[0].plot([0, 1], [x0_i, eps_i], color="C0", linewidth=0.8)
axes[0].set_title("conditional paths: one line per pair (x_0, ε); they cross")
axes[0].set_ylabel("x")
for i in range(30):
    axes[1].plot(ode_times.numpy(), ode_path[:, i].numpy(), color="C1", linewidth=0.8)
axes[1].set_title("the ODE dx/dt = v*(x, t) from the same ε: curved, never crossing")
fig.tight_layout()
plt.show()

# %% [markdown]
# Both panels move the same distribution (the grey density $p_t(x)$ behind them) from noise at $t = 1$
# to the two data components at $t = 0$; the printout checks that the ODE's end points have the data's
# split and spread. But the individual paths differ. The pairs of the training data are drawn
# independently, so their lines cross. The ODE cannot cross itself (one velocity per point and time),
# so its paths bend: a noise sample near 0 first waits, then commits to one of the components.
# **The straight lines are the training targets, not the sampling paths.** How far the sampling paths of
# the real model are from straight decides how few Euler steps suffice (§6). One more thing to read off
# the formula: at $t = 1$, $x_t = \varepsilon$ carries no information about $x_0$, so
# $v^*(x, 1) = x - \mathbb E[x_0]$, and one Euler step from $t = 1$ to $0$ lands on the data mean (§4
# checks this on images).
#
# ## 2. The loss
#
# The training loss is the squared error of the velocity, averaged over $t \sim \mathcal U(0, 1)$, data and noise:
#
# $$\mathcal L(\theta) = \mathbb E_{t,\,x_0,\,\varepsilon}\,\big\lVert (\varepsilon - x_0) - v_\theta(x_t, t) \big\rVert^2,
# \qquad x_t = (1-t)\,x_0 + t\,\varepsilon$$
#
# (Lipman et al. eq. 23 with $\sigma_{\min} = 0$ and time reversed; Liu et al. eq. 1). Compare DDPM's
# $\lVert\varepsilon - \varepsilon_\theta(x_t, t)\rVert^2$ (eq. 14): the same network, the same
# squared error, another target. `flow.flow_loss(model, x0, t, noise)` is that loss for one batch (the
# mean over pixels and images, as in `diffusion_loss`). Here it is by hand on a batch of test images
# with the shipped flow model, and checked against the package.

# %%
ddpm_teach.course.section("2. The loss")
x0_batch = x0_real                                                       # (N_SHOW, 1, 28, 28)
t_batch = sample_t(len(x0_batch), "uniform", generator(2))               # t ~ U(0, 1), [N_SHOW]
eps_batch = torch.randn(x0_batch.shape, generator=generator(3))
with torch.no_grad():
    x_t_batch = (1 - t_batch.view(-1, 1, 1, 1)) * x0_batch + t_batch.view(-1, 1, 1, 1) * eps_batch   # the path
    v_hat = flow_model(x_t_batch.to(DEVICE), (t_batch * 999).to(DEVICE)).cpu()                       # v_θ(x_t, t·999)
    loss_by_hand = ((eps_batch - x0_batch) - v_hat).pow(2).mean()                                    # ‖(ε − x_0) − v_θ‖²
    loss_package, _ = flow_loss(flow_model, x0_batch.to(DEVICE), t_batch.to(DEVICE), eps_batch.to(DEVICE))
torch.testing.assert_close(loss_by_hand, loss_package.cpu())
print("flow_loss(model, x_0, t, ε) equals ‖(ε − x_0) − v_θ(x_t, t·999)‖² computed by hand (assert_close passed)")

# %% [markdown]
# **Why the UNet sees $t \cdot 999$.** The UNet of notebook 03 embeds its time input with sinusoids
# $\cos(t\,\omega_i), \sin(t\,\omega_i)$, $\omega_i = 10000^{-i/16}$ (for the course's 32 embedding
# channels), designed for DDPM's integer steps $0 \dots 999$: the fastest sinusoid turns many times over
# that range, the slowest barely moves. Feed it $t \in [0, 1]$ and every argument $t\,\omega_i$ stays
# below 1: all 32 features are nearly constant, and nearby times look the same to the network.
# `flow.network_time(t)` = $t \cdot 999$ (`FLOW_TIME_SCALE`) gives the embedding the range it was built for, so
# the same UNet serves both objectives unchanged; the flow samplers pass it for you
# (`sampler.model_time`). The cell compares the two.

# %%
embedding_dim = flow_model.config.base_channels                      # the UNet embeds time in base_channels features
emb_times = torch.linspace(0, 1, 201)
raw = timestep_embedding(emb_times, embedding_dim)                   # t ∈ [0, 1] as it is, (201, 32)
scaled = timestep_embedding(network_time(emb_times), embedding_dim)  # t·999, (201, 32)
torch.testing.assert_close(network_time(emb_times), emb_times * 999)
for name, emb in (("t", raw), ("t·999", scaled)):
    near_pair = torch.nn.functional.cosine_similarity(emb[100:101], emb[102:103]).item()    # t = 0.5 and 0.51
    far_pair = torch.nn.functional.cosine_similarity(emb[20:21], emb[180:181]).item()       # t = 0.1 and 0.9
    print(f"embedding of {name:<6}: cosine similarity of t = 0.5 and 0.51: {near_pair:.4f};  of t = 0.1 and 0.9: {far_pair:.4f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
for ax, (name, emb) in zip(axes, (("fed t ∈ [0, 1]", raw), ("fed t·999 (network_time)", scaled))):
    ax.imshow(emb.T.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1, extent=(0, 1, embedding_dim - 0.5, -0.5))
    ax.set_xlabel("flow time t")
    ax.set_title(f"sinusoidal time embedding, {name}")
axes[0].set_ylabel("feature (cos, then sin)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Training
#
# `training.train_step(..., objective="flow")` draws $t \sim \mathcal U(0, 1)$ (`t_sampling="uniform"`,
# §8 has the other choice) instead of an integer step, and calls `flow_loss` instead of
# `diffusion_loss`; everything else (EMA, warm-up, clipping, checkpoints, exact resume) is notebook 04's.
# `TrainConfig(objective="flow")` is all it takes (`--objective flow` on the command line). First a short
# run of a tiny UNet on this CPU, `TRAIN_STEPS` steps (300 at full size, 30 at CI size).
#
# What loss to expect at the start: the UNet's last layer starts at zero (notebook 03), so a fresh
# model predicts $\hat v = 0$, and its loss is $\mathbb E\lVert\varepsilon - x_0\rVert^2/d = 1 + \mathbb E[x_0^2]$
# per pixel ($\varepsilon$ has variance 1 and is independent of $x_0$). For DDPM's ε-loss the start is 1.

# %%
ddpm_teach.course.section("3. Training")
train_data = load_dataset("fashion_mnist", train=True)
TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(14,), norm_groups=8)
short_config = TrainConfig(objective="flow", t_sampling="uniform", steps=TRAIN_STEPS, batch_size=32, lr=1e-3,
                           warmup_steps=max(1, TRAIN_STEPS // 10), ema_decay=0.99, seed=0, checkpoint_every=0,
                           log_every=10, out_dir=str(WORK_DIR / "short_flow"))
short = Trainer(short_config, TINY, data=train_data)

x0_test_all, _ = test_data.batch(slice(None))                          # all 10,000 test images, (10000, 1, 28, 28)
zero_loss = 1 + float(x0_test_all.pow(2).mean())                       # E‖ε − x_0‖²/d for v̂ = 0
with torch.no_grad():
    fresh_output = short.model(x0_real.to(short.device), network_time(torch.full((N_SHOW,), 0.5, device=short.device)))
print(f"tiny UNet: {short.model.num_parameters():,} parameters, objective {short_config.objective!r}, "
      f"t_sampling {short_config.t_sampling!r}")
print(f"a fresh UNet predicts v̂ = 0: {bool(fresh_output.abs().max() == 0)}; so the first loss is about "
      f"1 + E[x_0²] = {zero_loss:.3f} (E over the test images)")

# %%
# NBVAL_IGNORE_OUTPUT
with timed(f"{TRAIN_STEPS} flow-matching steps"):
    short.train(progress=False)
first, last = short.loss_history[0], sum(short.loss_history[-10:]) / 10
print(f"first loss {first:.3f}, mean of the last 10: {last:.3f}")

# %% [markdown]
# The shipped flow model was trained by the same code with the CPU fast path,
# `python -m ddpm_teach train --preset cpu-fast --objective flow` (then `export`), the recipe of
# `fashion_mnist_ddpm.pt` with the target changed. What the checkpoint says about itself (read from its
# dictionary, not from this text), beside the ε-model's:

# %%
# NBVAL_IGNORE_OUTPUT
# (read from the shipped checkpoints, which may be retrained)
for name, ckpt in (("fashion_mnist_flow.pt", flow_ckpt), ("fashion_mnist_ddpm.pt", eps_ckpt)):
    config = ckpt["train_config"]
    print(f"{name:<22} objective {checkpoint_objective(ckpt)!r:<7} t_sampling {config.get('t_sampling', '—')!r:<11} "
          f"step {ckpt['step']:,} (planned {config['steps']:,}) × batch {config['batch_size']}, lr {config['lr']:g}, "
          f"EMA {config['ema_decay']:g}, mixed precision {config['mixed_precision']!r}")
same_budget = (flow_ckpt["step"] == eps_ckpt["step"]
               and flow_ckpt["train_config"]["batch_size"] == eps_ckpt["train_config"]["batch_size"])
print(f"the two were trained for the same number of steps and images: {same_budget}")

# %%
fig, (ax_short, ax_shipped) = plt.subplots(1, 2, figsize=(11, 3.5))
plot_loss_curve(short.loss_history, smooth=0.9, ax=ax_short)
ax_short.set_title(f"short run: tiny UNet, {len(short.loss_history)} steps × batch {short_config.batch_size}")
plot_loss_curve(flow_ckpt["loss_history"], smooth=0.9, ax=ax_shipped)
ax_shipped.set_title(f"fashion_mnist_flow.pt: {len(flow_ckpt['loss_history']):,} steps × batch "
                     f"{flow_ckpt['train_config']['batch_size']}")
low = min(ax_short.get_ylim()[0], ax_shipped.get_ylim()[0])
for ax in (ax_short, ax_shipped):
    ax.axhline(zero_loss, color="k", linestyle=":", linewidth=1, label="v̂ = 0: 1 + E[x_0²]")
    ax.set_ylim(low, 1.15 * zero_loss)                                   # the same y axis, to compare
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Both curves should start at the dotted line (the fresh model's $\hat v = 0$); how far does each fall? No model can bring the
# loss to zero: it regresses onto $\varepsilon - x_0$, which $x_t$ does not determine (§1), so even $v^*$
# leaves the spread of the targets around it (§8 looks at the loss per $t$).
# As in notebook 04, the loss says little about how good the samples are; samples from both, with 16
# Euler steps from the same noise:

# %%
# NBVAL_IGNORE_OUTPUT
x_1_show = torch.randn(N_SHOW, 1, 28, 28, generator=generator(4))          # x_1 = ε: noise at t = 1
with timed("sampling both models, 16 Euler steps each"):
    short_samples = sample(short.ema.module, FlowEulerSampler(steps=16), x_T=x_1_show, progress=False).cpu()
    shipped_samples = sample(flow_model, FlowEulerSampler(steps=16), x_T=x_1_show, progress=False).cpu()

# %%
fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 2.4))
show_images(short_samples, nrow=N_SHOW, ax=ax_a, title=f"short run ({len(short.loss_history)} steps), EMA weights")
show_images(shipped_samples, nrow=N_SHOW, ax=ax_b, title=f"fashion_mnist_flow.pt (step {flow_ckpt['step']:,})")
fig.tight_layout()
plt.show()

# %% [markdown]
# Expect the short run's images to be blobs at best: it saw a small fraction of one pass
# over the data (notebook 04 made the same point for the ε-model). The shipped model, the same code
# with more steps, a bigger UNet and the fast path, is the one the rest of the notebook samples.
#
# ## 4. Sampling: Euler and Heun in $t$
#
# Sampling solves the ODE $dx/dt = v_\theta(x, t)$ backwards, from noise $x_1 = \varepsilon$ at $t = 1$
# to $t = 0$, on a grid $1 = t_0 > t_1 > \dots > t_K = 0$ (`flow.flow_time_grid(K)`, uniform by default).
# **Euler's method** follows the velocity at the start of each step (one network call):
#
# $$x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i)\,\hat v_i, \qquad \hat v_i = v_\theta(x_{t_i}, t_i),$$
#
# with $t_{i+1} - t_i < 0$. Along the way, $\hat x_0 = x_{t_i} - t_i\,\hat v_i$ is where the current
# velocity would land at $t = 0$ (the sampler reports it as `pred_x0`, never clipped). One Euler step
# written out, with the shipped model, step by step through a 4-step solve, against `FlowEulerSampler.step`:

# %%
ddpm_teach.course.section("4. Euler and Heun")
euler_4 = FlowEulerSampler(steps=4)
print(euler_4, " grid:", [round(float(t), 4) for t in euler_4.times])
x = torch.randn(N_SHOW, 1, 28, 28, generator=generator(5))               # x_1 = ε, (N_SHOW, 1, 28, 28)
euler_4.begin()                                                           # what sample() does before its loop
for i, t_now in enumerate(euler_4.timesteps.tolist()):
    t_next = float(euler_4.times[i + 1])
    v_i = predict_v(x, t_now)
    by_hand = x + (t_next - t_now) * v_i                                  # x_{t_{i+1}} = x_{t_i} + (t_{i+1} − t_i)·v̂_i
    out = euler_4.step(v_i, t_now, x)
    torch.testing.assert_close(out.prev_sample, by_hand)
    torch.testing.assert_close(out.pred_x0, x - t_now * v_i)              # x̂_0 = x_t − t·v̂
    x = out.prev_sample
print(f"FlowEulerSampler.step equals the Euler step by hand at all {euler_4.nfe} steps (prev_sample and pred_x0)")

# %% [markdown]
# **Heun's method** (the trapezoidal rule of notebook 09 §3) takes the Euler step as a trial $x'$,
# evaluates the velocity again at its end, and redoes the step with the average:
#
# $$x' = x_{t_i} + (t_{i+1} - t_i)\,\hat v_i, \qquad
# x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i)\,\tfrac12\big(\hat v_i + v_\theta(x', t_{i+1})\big).$$
#
# Two network calls per step. Notebook 09's Heun (Karras et al. Algorithm 1) skips the correction on
# its last step, because the σ-ODE's slope $(\tilde x - D)/\sigma$ divides by $\sigma = 0$ there. The flow
# velocity at $t = 0$ is finite, so `FlowHeunSampler` corrects every step: its `timesteps` list the times
# of the network calls, each inner time twice. A one-step Heun solve written out, against the package:

# %%
heun_3 = FlowHeunSampler(steps=3)
print(heun_3)
print("network calls at t =", [round(float(t), 4) for t in heun_3.timesteps])

x_1 = torch.randn(N_SHOW, 1, 28, 28, generator=generator(6))
v_start = predict_v(x_1, 1.0)
x_trial = x_1 + (0.0 - 1.0) * v_start                                      # the Euler trial, to t = 0
by_hand = x_1 + (0.0 - 1.0) * 0.5 * (v_start + predict_v(x_trial, 0.0))   # the average of the two velocities
by_package = sample(flow_model, FlowHeunSampler(steps=1), x_T=x_1, progress=False).cpu()
torch.testing.assert_close(by_package, by_hand)
print("one Heun step from t = 1 to 0 by hand equals sample(flow_model, FlowHeunSampler(steps=1)) (2 network calls)")

# %% [markdown]
# Now samples at several budgets, all from the same noise (one column per $x_1$): Euler with
# `EULER_STEPS` steps, Heun at the same even NFE, real test images on top for comparison (they do not
# belong to the columns). Beside them, the distance of each to a fine solve of the same ODE
# (Heun with `REFERENCE_STEPS` steps): the solver's error, not the quality of the images.

# %%
# NBVAL_IGNORE_OUTPUT
x_1_grid = torch.randn(N_SHOW, 1, 28, 28, generator=generator(7))
runs = {}
with timed("the sample grid"):
    reference = sample(flow_model, FlowHeunSampler(steps=REFERENCE_STEPS), x_T=x_1_grid, progress=False).cpu()
    for steps in EULER_STEPS:
        runs["Euler", steps] = sample(flow_model, FlowEulerSampler(steps=steps), x_T=x_1_grid, progress=False).cpu()
    for nfe in [n for n in EULER_STEPS if n % 2 == 0]:
        runs["Heun", nfe] = sample(flow_model, FlowHeunSampler(steps=nfe // 2), x_T=x_1_grid, progress=False).cpu()
print(f"RMS distance from the reference (Heun, {2 * REFERENCE_STEPS} NFE), pixels in [−1, 1]:")
for (name, nfe), images in runs.items():
    print(f"  {name:<5} {nfe:>3} NFE: {float((images - reference).pow(2).mean().sqrt()):.4f}")

mean_image = x0_test_all.mean(0, keepdim=True)                             # E[x_0] over the test set, (1, 1, 28, 28)
one_step = runs["Euler", 1]
print(f"\none Euler step from t = 1 (x̂_0 = x_1 − v̂(x_1, 1)): RMS distance to the mean test image "
      f"{float((one_step - mean_image).pow(2).mean().sqrt()):.3f}; spread across the {N_SHOW} columns (mean pixel std) "
      f"{float(one_step.std(0).mean()):.3f}, against {float(reference.std(0).mean()):.3f} for the reference")

# %%
rows = [x0_real] + [images for images in runs.values()]
labels = ["real (test set)"] + [f"{name}, {nfe} NFE" for name, nfe in runs]
fig, ax = plt.subplots(figsize=(1.0 * N_SHOW + 2.2, 0.95 * len(rows) + 0.6))
show_images(torch.cat(rows), nrow=N_SHOW, ax=ax)
ax.set_yticks([(28 + 2) * (i + 0.5) + 1 for i in range(len(rows))], labels, fontsize=9)
ax.tick_params(length=0)
ax.set_xticks([])
ax.set_title("fashion_mnist_flow.pt: the same x_1 per column")
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for:
#
# * **One Euler step** lands on $\hat x_0 = x_1 - \hat v(x_1, 1)$. §1 predicted the optimal velocity
#   there is $x_1 - \mathbb E[x_0]$, so every column should show nearly the same blurry average garment;
#   the printout measures how close it is to the mean test image, and how little the columns differ.
# * **More steps** let the path bend (§1): do the images sharpen, and do the columns become different
#   garments? Where do the rows stop changing? The distances to the reference put a number on it.
# * **Heun against Euler at the same NFE**: Heun is second order (09 §3) but pays two calls per step,
#   so at 2 NFE it is a single corrected step. Compare the distances row by row.
#
# ## 5. Flow matching against diffusion at an equal budget
#
# Which is better, the flow model or the ε-model, at a given number of network evaluations? Both
# checkpoints have the same UNet, and the flow model is trained with the ε-model's recipe and budget
# (§3 prints from both checkpoints whether their steps and batches match). The benchmark
# `benchmarks/flow_vs_diffusion.py` samples 1000 images per row from the same noise with the flow model
# (Euler; Heun at even NFE) and with the ε-model (DDIM on uniform timesteps, $\hat x_0$ clipped;
# DPM-Solver++(2M) on Karras spacing, notebook 09), at NFE 1 to 64, and scores each row with the
# classifier-FID of notebook 05, with $N$ and the real-vs-real floor. Sampling 1000 images for each of
# its rows takes a long time on a CPU, so the table is measured by the script, not here:
#
# ```
# python benchmarks/flow_vs_diffusion.py --out benchmarks/results/flow_vs_diffusion.json --resume
# ```
#
# The cells below read the JSON file and print and plot whatever it holds. The comparison table takes,
# at each NFE, the better of Euler and Heun for the flow model and the better of DDIM and
# DPM-Solver++(2M) for the ε-model, and calls a difference resolved only when it is larger than 0.5:
# the README's estimate of how much one model's FID moves with the sampling seed at $N = 1000$. That
# estimate comes from two seeds at FID ≈ 3; at the FIDs of 10-60 that the rows at 1-4 NFE reach, the
# spread is likely larger, so read the verdicts there with care.

# %%
ddpm_teach.course.section("5. Flow against diffusion")
# NBVAL_IGNORE_OUTPUT
# (reads benchmarks/results/flow_vs_diffusion.json, which the benchmark rewrites)
RESULTS_PATH = repo_root() / "benchmarks" / "results" / "flow_vs_diffusion.json"
FAMILIES = ("flow Euler", "flow Heun", "ε DDIM", "ε DPM++2M")
FID_SEED_SPREAD = 0.5           # README, "Results": FID differences under about 0.5 at N = 1000 are not resolved


def fid_rows(results: dict) -> list[dict]:
    """The FID rows of the four families (rows of other experiments in the file are left out)."""
    return [r for r in results.get("rows", []) if r.get("table") == "fid_vs_nfe" and r.get("family") in FAMILIES]


def best_of(rows: list[dict], prefix: str, nfe: int | None = None) -> dict | None:
    """The row with the lowest FID among the families starting with ``prefix`` (at ``nfe``, if given)."""
    chosen = [r for r in rows if r["family"].startswith(prefix) and (nfe is None or r["nfe"] == nfe)]
    return min(chosen, key=lambda r: r["fid"]) if chosen else None


results = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.is_file() else {}
if not fid_rows(results):
    print(f"{RESULTS_PATH.relative_to(repo_root())} is not there yet (or holds no FID rows): run the benchmark command "
          "above to measure the table; the rest of this section is skipped.")
else:
    rows = fid_rows(results)
    print(f"{RESULTS_PATH.name}: N = {results.get('n')} per row, precision {results.get('precision')}, "
          f"device {results.get('device')}, torch {results.get('torch')}, seed {results.get('seed')}")
    print(f"  flow checkpoint {Path(results.get('flow_checkpoint', '?')).name}, ε checkpoint "
          f"{Path(results.get('eps_checkpoint', '?')).name}")
    nfes = sorted({r["nfe"] for r in rows})
    print(f"\n{'NFE':>4}" + "".join(f"{family:>12}" for family in FAMILIES) + f"{'floor':>8}{'N':>6}   (classifier-FID)")
    for nfe in nfes:
        cells = []
        for family in FAMILIES:
            row = next((r for r in rows if r["family"] == family and r["nfe"] == nfe), None)
            cells.append(f"{row['fid']:>12.3f}" if row else f"{'—':>12}")
        any_row = next(r for r in rows if r["nfe"] == nfe)
        print(f"{nfe:>4}" + "".join(cells) + f"{any_row['fid_floor']:>8.3f}{any_row['n']:>6}")

    print(f"\n{'NFE':>4}{'best flow':>22}{'best ε':>24}{'flow/ε':>8}   verdict (resolved if the gap > {FID_SEED_SPREAD})")
    for nfe in nfes:
        flow_row, eps_row = best_of(rows, "flow", nfe), best_of(rows, "ε", nfe)
        if flow_row and eps_row:
            gap = flow_row["fid"] - eps_row["fid"]
            verdict = ("within the seed spread" if abs(gap) <= FID_SEED_SPREAD
                       else "flow lower" if gap < 0 else "ε lower")
            print(f"{nfe:>4}{flow_row['family'] + ' ' + format(flow_row['fid'], '.3f'):>22}"
                  f"{eps_row['family'] + ' ' + format(eps_row['fid'], '.3f'):>24}{flow_row['fid'] / eps_row['fid']:>8.2f}   {verdict}")

    flow_best, eps_best = best_of(rows, "flow"), best_of(rows, "ε")
    print(f"\nbest flow FID / best ε FID over all NFE: {flow_best['fid'] / eps_best['fid']:.2f} "
          f"({flow_best['setting']} {flow_best['fid']:.3f}; {eps_best['setting']} {eps_best['fid']:.3f})")
    few = [r for r in rows if r["nfe"] <= 8]
    flow_few, ddim_few = best_of(few, "flow"), best_of(few, "ε DDIM")
    if flow_few and ddim_few:
        print(f"at NFE <= 8: best flow {flow_few['fid']:.3f} ({flow_few['setting']}) against best DDIM "
              f"{ddim_few['fid']:.3f} ({ddim_few['setting']}): ratio {flow_few['fid'] / ddim_few['fid']:.2f}")
    for row in results.get("rows", []):
        if row.get("table") == "straightness":
            print(f"straightness S, {row['setting']}: {row['straightness']:.4f} (N = {row['n']})")

# %%
# NBVAL_IGNORE_OUTPUT
# (plots whatever the benchmark file holds; nothing when it is missing)
rows = fid_rows(results)
if rows:
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for i, family in enumerate(FAMILIES):
        points = sorted((r["nfe"], r["fid"]) for r in rows if r["family"] == family)
        if points:
            ax.plot(*zip(*points), "o-" if family.startswith("flow") else "s--", color=f"C{i}", label=family)
    ax.axhline(rows[0]["fid_floor"], color="0.5", linestyle=":", linewidth=1.2,
               label=f"real-vs-real floor (N = {rows[0]['n']})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    nfes = sorted({r["nfe"] for r in rows})
    ax.set_xticks(nfes, [str(n) for n in nfes])
    ax.minorticks_off()
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.set_xlabel("network evaluations per image (NFE)")
    ax.set_ylabel("classifier-FID (lower is better, log scale)")
    ax.set_title(f"flow matching against diffusion, the same UNet (N = {rows[0]['n']} per point)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
else:
    print("no benchmark rows yet: nothing to plot")

# %% [markdown]
# How to read the table and the plot (the numbers are in the printout; they change with the
# checkpoints and with $N$):
#
# * **At 1-4 NFE**, which family is lower? A model whose sampling paths are straighter (§6) loses less
#   to a coarse solver, and the comparison table says at each NFE whether the gap is larger than the
#   seed spread. But mind the grids: DDIM's uniform timesteps end at the DDPM index 0, with a last step
#   from flow time ≈ 0.01 to 0 that hardly moves the image (§7), so at 2 NFE DDIM makes in effect one
#   step; and it clips $\hat x_0$ (all of §5's DDIM rows do), which changes most at 1-2 NFE, where one
#   call has to predict the whole image. A gap at 1-4 NFE can come from the grid and the clipping,
#   not only from straightness. If you find the ε-model lower at 1 NFE although §6 says that straighter
#   paths lose less to a coarse solver, check these causes before concluding anything about the models.
# * **At 32-64 NFE**, both ODEs are solved accurately and FID measures the *models*, not the solvers:
#   do the two families meet, or does one stay lower? Is that gap resolved?
# * **Heun against Euler** for the flow model and **DPM-Solver++(2M) against DDIM** for the ε-model: does
#   the second-order solver help at the same NFE at all, and if so, from which NFE on? A smaller solver
#   error against the exact solve (§4) need not give a lower FID at few steps. A possible reason: Heun's
#   correction evaluates the network at the end of an Euler trial step, a point that, with one or two
#   big steps, may lie far from any path the network was trained near (notebook 09 §7 traced such a
#   collapse for Heun on the ε-model, in the corrections of its long low-noise steps; for the flow
#   model it is a hypothesis to check).
# * **The floor** is what 1000 real images score against the test set; no row can be expected below it.
# * Before concluding that one *objective* is better, check the header lines (which checkpoints, which $N$)
#   and §3's printout: the comparison is fair only if both models had the same training budget. And one
#   dataset, one model size and one training length decide nothing in general: SD3's paper compares
#   the objectives at scale (its §5.1).
#
# ## 6. Straightness
#
# How straight are the paths that sampling actually follows? Liu et al. 2023 measure it with the
# **straightness** of a flow $x_t$ from its noise $x_1$ to its sample $x_0$:
#
# $$S = \int_0^1 \mathbb E\,\big\lVert (x_1 - x_0) - \tfrac{dx_t}{dt} \big\rVert^2\,dt ,$$
#
# the mean squared difference between the velocity at each time and the velocity of the straight line
# from the path's start to its end (in our time direction that line's velocity is $x_1 - x_0$). $S = 0$
# exactly when every path is a straight line walked at constant speed; then the velocity never
# changes along a path, and **one Euler step is exact**. `flow.path_straightness(times, xs)`
# evaluates it on a solver's grid, with $dx_t/dt$ the velocity each step moved with and the integral
# a $|\Delta t|$-weighted sum, the mean over images and pixels (exercise 4 does it by hand);
# `flow.straightness(model, sampler, x_T=...)` samples and measures in one call.
#
# An ε-model's paths live in other coordinates. §7 shows that its DDIM path, rescaled to
# $c\,x_t$ at the flow time $t_{\text{flow}} = \sqrt{1-\bar\alpha}/(\sqrt{\bar\alpha} + \sqrt{1-\bar\alpha})$, is a
# path of the same kind; `flow.trajectory_to_flow` does that conversion, so the two models'
# straightness can be compared. Both start from the same noise, on `STRAIGHT_N` images with
# `STRAIGHT_STEPS` steps (DDIM with $\eta = 0$ and no clipping: the ODE itself, as the benchmark does).

# %%
ddpm_teach.course.section("6. Straightness")
# NBVAL_IGNORE_OUTPUT
x_1_straight = torch.randn(STRAIGHT_N, 1, 28, 28, generator=generator(8))
flow_euler = FlowEulerSampler(steps=STRAIGHT_STEPS)
with timed(f"the two sets of paths, {STRAIGHT_N} images × {STRAIGHT_STEPS} steps each"):
    _, flow_path = sample(flow_model, flow_euler, x_T=x_1_straight, progress=False, return_trajectory=True)
    ddim_straight = DDIMSampler(schedule, steps=STRAIGHT_STEPS, clip_x0=False)
    _, ddim_path = sample(eps_model, ddim_straight, x_T=x_1_straight, progress=False, return_trajectory=True)
S_flow = path_straightness(flow_euler.times, flow_path.x)
ddim_times, ddim_xs = trajectory_to_flow(schedule, ddim_path)            # t_flow(τ_i) and c_i·x_i, the last at t = 0
S_eps = path_straightness(ddim_times, ddim_xs)
assert math.isclose(S_flow, straightness(flow_model, FlowEulerSampler(steps=STRAIGHT_STEPS), x_T=x_1_straight),
                    rel_tol=1e-6)                                          # the package's one-call version
line_flow = (flow_path.x[-1] - flow_path.x[0]) / (0 - 1)                  # the straight line's velocity, x_1 − x_0
line_eps = (ddim_xs[-1] - ddim_xs[0]) / (ddim_times[-1] - ddim_times[0])
print(f"straightness S (mean over images and pixels), {STRAIGHT_N} images, {STRAIGHT_STEPS} steps:")
print(f"  flow model, Euler:                       S = {S_flow:.4f}   (mean ‖x_1 − x_0‖²/d of its lines: "
      f"{float(line_flow.pow(2).mean()):.3f})")
print(f"  ε-model, DDIM η = 0 in flow coordinates: S = {S_eps:.4f}   (mean ‖x_1 − x_0‖²/d of its lines: "
      f"{float(line_eps.pow(2).mean()):.3f})")
print(f"  ratio S(ε) / S(flow) = {S_eps / S_flow:.2f}")

# %%
PIXELS = ((7, 14), (14, 14), (21, 10))                                    # (row, column) of three pixels of image 0
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for ax, (name, times, xs) in zip(axes, (("fashion_mnist_flow.pt, flow Euler", flow_euler.times, flow_path.x),
                                        ("fashion_mnist_ddpm.pt, DDIM in flow coordinates", ddim_times, ddim_xs))):
    for k, (row, col) in enumerate(PIXELS):
        values = xs[:, 0, 0, row, col]
        ax.plot(times.numpy(), values.numpy(), "o-", color=f"C{k}", markersize=2.5, label=f"pixel ({row}, {col})")
        ax.plot([1.0, 0.0], [float(values[0]), float(values[-1])], ":", color=f"C{k}", linewidth=1)   # the straight line
    ax.set_xlim(1.02, -0.02)                                              # sampling runs from t = 1 to t = 0
    ax.set_xlabel("flow time t (sampling runs right to left: noise → data)")
    ax.set_title(name, fontsize=10)
    ax.grid(True, alpha=0.3)
axes[0].set_ylabel("x_t at the pixel")
axes[0].legend(fontsize=8)
fig.suptitle("three pixels of one image along the sampling path (dotted: the straight line from start to end)", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for: how far each solid curve strays from its dotted line, and where. A bend means the
# velocity changed along the way, so a coarse Euler step, which holds the velocity of its start, goes
# astray there. The printout puts the two models' $S$ side by side, each next to the size of its
# lines' own velocity for scale. Which model's paths are straighter, and by what factor? Does that fit
# what §5's table shows at 1-4 NFE? Neither model has $S = 0$: the flow model's paths bend for the reason
# of §1, however well it is trained. Liu et al.'s **reflow** straightens them: sample pairs
# (noise, the model's image from it) and train again on the straight lines between *those*, which
# cross much less, so that repeated reflow makes the paths straighter; the course does not do it.
#
# ## 7. DDIM is flow Euler in other coordinates
#
# Take DDPM's $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ and multiply it by
# $c_t = 1/(\sqrt{\bar\alpha_t} + \sqrt{1-\bar\alpha_t})$. The two weights now add up to 1:
#
# $$c_t\,x_t = (1-s)\,x_0 + s\,\varepsilon, \qquad s = \frac{\sqrt{1-\bar\alpha_t}}{\sqrt{\bar\alpha_t} + \sqrt{1-\bar\alpha_t}},$$
#
# a point of the straight path at flow time $s$ (the $t_{\text{flow}}$ of §6; `flow.ddpm_time_to_flow`, and
# $c_t$ is `flow.ddpm_to_flow_scale`; in 09's $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$, $s = \sigma/(1+\sigma)$).
# An ε-model's prediction gives $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$,
# the same $\hat x_0$ as $(x - s\hat\varepsilon)/(1-s)$ in flow coordinates $x = c_t x_t$, and so a velocity
# $\hat v = \hat\varepsilon - \hat x_0$ (`flow.EpsAsVelocity` wraps an ε-model this way).
#
# Now one deterministic DDIM step from $t$ to $t'$ (DDIM eq. 12 with $\eta = 0$):
# $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat\varepsilon$. Multiply by
# $c_{t'}$: $c_{t'}x_{t'} = (1-s')\,\hat x_0 + s'\,\hat\varepsilon$. And one Euler step of $dx/ds = \hat v$ in flow
# coordinates from $x = (1-s)\hat x_0 + s\hat\varepsilon$:
#
# $$x + (s' - s)\,(\hat\varepsilon - \hat x_0) = (1-s)\,\hat x_0 + s\,\hat\varepsilon + (s'-s)\,\hat\varepsilon - (s'-s)\,\hat x_0
# = (1-s')\,\hat x_0 + s'\,\hat\varepsilon .$$
#
# The same point. **Deterministic DDIM is Euler's method on the straight-path ODE of the ε-model**, on
# the flow times of its timesteps. Notebook 09 found it to be Euler in $\tilde x = x_t/\sqrt{\bar\alpha}$ and
# $\sigma$. The straight-path coordinates are $x = \tilde x/(1+\sigma)$ at $s = \sigma/(1+\sigma)$, and this
# change of variables maps the line $\hat x_0 + \sigma\hat\varepsilon$ onto the line
# $(1-s)\,\hat x_0 + s\,\hat\varepsilon$. In both coordinates an Euler step holds $\hat x_0$ and $\hat\varepsilon$
# fixed and moves along that line, so both land on the same point; for a general change of variables
# the Euler steps would differ. So the difference between a flow model and an
# ε-model is not the sampler: it is **which velocity field the network learned**, and so how straight
# its paths are (§6).
#
# The grid: the flow times and scales of a 10-step DDIM sampler, from the schedule alone.

# %%
ddpm_teach.course.section("7. DDIM is flow Euler")
ddim_10 = DDIMSampler(schedule, steps=10)
flow_times_10 = ddpm_time_to_flow(schedule, ddim_10.timesteps)
scales_10 = ddpm_to_flow_scale(schedule, ddim_10.timesteps)
print(f"{'DDPM t':>7}{'ᾱ_t':>10}{'flow time s':>13}{'c_t':>8}")
for t, s, c in zip(ddim_10.timesteps.tolist(), flow_times_10.tolist(), scales_10.tolist()):
    print(f"{t:>7}{float(schedule.alphas_cumprod[t]):>10.5f}{s:>13.4f}{c:>8.4f}")
print("FlowEulerSampler.from_ddpm_timesteps(schedule, ddim_10.timesteps).times ends at",
      [round(float(t), 4) for t in FlowEulerSampler.from_ddpm_timesteps(schedule, ddim_10.timesteps).times[-3:]])

# %% [markdown]
# DDIM's uniform timesteps are far from uniform in flow time: they crowd near $s = 1$, where $\bar\alpha$
# is tiny. At the other end, the last DDIM step runs from the DDPM index $t = 0$ (flow time
# $s \approx 0.01$) to the image at $s = 0$: DDIM's last network call hardly moves the image, while the
# step before it is long (in the table above, $s \approx 0.28 \to 0.01$). And DDIM starts at $s_{999} < 1$,
# not at pure noise: the flow sampler there starts from $c_{999}\,x_T$.
#
# The numerical check with the shipped ε-model: DDIM ($\eta = 0$, **no** $\hat x_0$ clipping, because
# clipping is not part of the ODE) against `FlowEulerSampler.from_ddpm_timesteps` on `EpsAsVelocity(eps_model, schedule)`,
# started from $c\,x_T$, `BRIDGE_STEPS` steps, the same $x_T$. The final images are compared, and every
# state along the way after converting DDIM's with `trajectory_to_flow`.

# %%
# NBVAL_IGNORE_OUTPUT
x_T = torch.randn(N_SHOW, 1, 28, 28, generator=generator(9))
ddim = DDIMSampler(schedule, steps=BRIDGE_STEPS, clip_x0=False)
flow_euler_on_eps = FlowEulerSampler.from_ddpm_timesteps(schedule, ddim.timesteps)
c_start = float(ddpm_to_flow_scale(schedule, int(ddim.timesteps[0])))
by_ddim, ddim_trajectory = sample(eps_model, ddim, x_T=x_T, progress=False, return_trajectory=True)
by_flow, flow_trajectory = sample(EpsAsVelocity(eps_model, schedule), flow_euler_on_eps, x_T=c_start * x_T,
                                  progress=False, return_trajectory=True)
difference = float((by_ddim.cpu() - by_flow.cpu()).abs().max())
_, ddim_in_flow = trajectory_to_flow(schedule, ddim_trajectory)
path_difference = float((ddim_in_flow - flow_trajectory.x.double()).abs().max())
print(f"{BRIDGE_STEPS} steps, {N_SHOW} images; flow sampler starts at t = {float(flow_euler_on_eps.times[0]):.4f} from "
      f"c·x_T, c = {c_start:.4f}")
print(f"largest pixel difference, DDIM against flow Euler on EpsAsVelocity: final images {difference:.1e}, "
      f"any state along the path {path_difference:.1e}")
assert difference < 1e-4 and path_difference < 1e-4
clipped = sample(eps_model, DDIMSampler(schedule, steps=BRIDGE_STEPS), x_T=x_T, progress=False)
print(f"(with the course's default x̂_0 clipping, DDIM differs from the ODE by up to "
      f"{float((clipped.cpu() - by_ddim.cpu()).abs().max()):.2f})")

# %% [markdown]
# Float32 rounding apart, the two are the same computation. One consequence: everything notebook 09
# measured about *unclipped* DDIM is a measurement of flow Euler on the ε-model's velocity field. §5's
# DDIM rows clip $\hat x_0$ (the course's default, not part of the ODE) and run on DDIM's own grid, so
# there the two families differ in the velocity field, in the clipping and in the step grid.
#
# ## 8. What SD3 changed
#
# Esser et al. 2024 (SD3) train rectified flow, the path of this notebook, with two changes.
#
# **1. Logit-normal training times** (their §3.1). Instead of $t \sim \mathcal U(0, 1)$, draw
# $u \sim \mathcal N(m, s^2)$ and set $t = 1/(1 + e^{-u})$, with density
#
# $$\pi_{\text{ln}}(t; m, s) = \frac{1}{s\sqrt{2\pi}}\,\frac{1}{t(1-t)}\,\exp\Big(-\frac{(\operatorname{logit} t - m)^2}{2s^2}\Big).$$
#
# It puts more of the training on the middle of the path and less near its ends. Their argument: at
# the two ends the best prediction is a simple mean ($v^*(x, 1) = x - \mathbb E[x_0]$, §1; at $t = 0$,
# $-x_0$), in the middle it is not. `flow.sample_t(n, "logit_normal")` draws it with $m = 0$, $s = 1$ (SD3 compared
# several $m$ and $s$); `--t-sampling logit_normal` trains with it. The left
# panel compares the densities and checks the package's draws against the formula; the right panel
# measures the shipped model's loss at fixed $t$, with the two values the *best possible* model
# cannot beat at the ends: at $t = 0$ the input holds no trace of $\varepsilon$, so the loss is at least
# $\mathbb E\lVert\varepsilon\rVert^2/d = 1$; at $t = 1$ it holds no trace of $x_0$, so the loss is at
# least the data's variance per pixel.

# %%
ddpm_teach.course.section("8. What SD3 changed")
draws = sample_t(200_000, "logit_normal", generator(10))
t_density = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
logit = torch.log(t_density / (1 - t_density))
logit_normal_pdf = torch.exp(-logit**2 / 2) / (math.sqrt(2 * math.pi) * t_density * (1 - t_density))   # m = 0, s = 1
histogram, edges = torch.histogram(draws.double(), bins=20, range=(0.0, 1.0), density=True)
centres = (edges[:-1] + edges[1:]) / 2
formula_at_centres = torch.exp(-torch.log(centres / (1 - centres)) ** 2 / 2) / (math.sqrt(2 * math.pi) * centres * (1 - centres))
assert float((histogram[2:-2] - formula_at_centres[2:-2]).abs().max()) < 0.05      # bins away from the ends
for low, high in ((0.0, 0.1), (0.4, 0.6), (0.9, 1.0)):
    share = float(((draws >= low) & (draws < high)).double().mean())
    print(f"share of training times in [{low}, {high}): uniform {high - low:.2f}, logit-normal {share:.2f}")
data_variance = float(x0_test_all.var(0).mean())                       # E‖x_0 − E[x_0]‖²/d, the loss floor at t = 1
print(f"the best possible loss at t = 0: 1; at t = 1: the data's variance per pixel, {data_variance:.3f}")

# %%
# NBVAL_IGNORE_OUTPUT
LOSS_TIMES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
loss_images, _ = test_data.batch(list(range(LOSS_T_IMAGES)))
loss_noise = torch.randn(loss_images.shape, generator=generator(11))
loss_at_t = []
with torch.no_grad(), timed(f"the loss at {len(LOSS_TIMES)} times, {LOSS_T_IMAGES} images each"):
    for t in LOSS_TIMES:
        t_batch = torch.full((LOSS_T_IMAGES,), t)
        loss, _ = flow_loss(flow_model, loss_images.to(DEVICE), t_batch.to(DEVICE), loss_noise.to(DEVICE))
        loss_at_t.append(float(loss))
print("loss of fashion_mnist_flow.pt at t =", ", ".join(f"{t:g}: {v:.3f}" for t, v in zip(LOSS_TIMES, loss_at_t)))

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].plot(t_density.numpy(), logit_normal_pdf.numpy(), color="C1", label="logit-normal (m = 0, s = 1)")
axes[0].stairs(histogram.numpy(), edges.numpy(), color="C1", alpha=0.5, label="flow.sample_t(…, 'logit_normal')")
axes[0].axhline(1.0, color="C0", label="uniform")
axes[0].set_xlabel("training time t")
axes[0].set_ylabel("density")
axes[0].set_title("where the training times fall")
axes[1].plot(LOSS_TIMES, loss_at_t, "o-", color="C2", label="fashion_mnist_flow.pt")
axes[1].plot([0.0], [1.0], "k_", markersize=18, markeredgewidth=2, label="best possible at t = 0: 1")
axes[1].plot([1.0], [data_variance], "k_", markersize=18, markeredgewidth=2, alpha=0.5,
             label="best possible at t = 1: variance of the data")
axes[1].set_xlabel("flow time t")
axes[1].set_ylabel("‖(ε − x_0) − v̂‖² per pixel")
axes[1].set_title(f"the shipped model's loss at fixed t ({LOSS_T_IMAGES} test images)")
for ax in axes:
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for: how close the model comes to the two floors at the ends, and where in between its
# loss is lowest (at CI size the curve rests on a handful of images). The loss of a time is not how much
# that time still has to learn: at $t = 0$ a loss of 1 is the best there is, because the noise in a clean
# image cannot be predicted and the target $\varepsilon - x_0$ carries all of it. That is one reason to
# weight times by what they contribute to the samples rather than by their loss; in SD3's comparison of
# many such weightings, the logit-normal ones did well. Whether logit-normal $t$ helps *this* model is an
# experiment; the second cell below prints what the course's checkpoint and benchmark file hold about it.
#
# **2. A shifted step grid** (their §5.3.2). At higher resolution, the same noise level destroys less of an image
# (neighbouring pixels average their noise away), so SD3 moves the sampling steps towards the noise:
# $t \mapsto \alpha t/(1 + (\alpha-1)\,t)$ with a shift $\alpha > 1$ that grows with the number of pixels
# (SD3's $\alpha = \sqrt{m/n}$, with $m$ and $n$ the pixel counts of the target and of the base resolution,
# not the logit-normal $m$ above).
# `flow.flow_time_grid(K, shift=α)` makes such a grid (`--flow-shift α` on the command line);
# $\alpha = 1$ is uniform. The first cell below prints 8-step grids; the second prints what the course holds
# about logit-normal training, then measures, on the images of §4, the distance of a 4-step Euler solve
# from §4's reference with and without a shift.

# %%
for shift in (1.0, 3.0):
    print(f"flow_time_grid(8, shift={shift:g}):", [round(float(t), 3) for t in flow_time_grid(8, shift=shift)])

# %%
# NBVAL_IGNORE_OUTPUT
# (depends on the shipped flow checkpoint, the benchmark file and the weights)
logit_rows = [r for r in results.get("rows", []) if "logit" in json.dumps(r).lower()]
print(f"t_sampling of the shipped flow model: {flow_ckpt['train_config']['t_sampling']!r}")
if logit_rows:
    print(f"{RESULTS_PATH.name} holds {len(logit_rows)} row(s) that mention logit-normal training:")
    for row in logit_rows:
        if "fid" in row:       # beside the uniform-t row of the same family and NFE (§5's table)
            uniform = next((r for r in fid_rows(results) if r["family"] == row["family"].replace(" (logit-normal t)", "")
                            and r["nfe"] == row["nfe"] and r["n"] == row["n"]), None)
            against = f"; uniform t {uniform['fid']:.3f}, ratio {row['fid'] / uniform['fid']:.2f}" if uniform else ""
            print(f"  {row['setting']}: FID {row['fid']:.3f} (N = {row['n']}){against}")
        else:
            print(f"  {row['setting']}: S = {row.get('straightness', float('nan')):.4f}")
else:
    print(f"{RESULTS_PATH.name} holds no logit-normal rows: this notebook does not measure whether logit-normal t "
          "helps on Fashion-MNIST")
for shift in (1.0, 3.0):
    solve = sample(flow_model, FlowEulerSampler(steps=4, shift=shift), x_T=x_1_grid, progress=False).cpu()
    print(f"Euler, 4 steps, shift {shift:g}: RMS distance from §4's reference {float((solve - reference).pow(2).mean().sqrt()):.4f}")

# %% [markdown]
# Does the shift help at 28×28 pixels? The printout measures it for one small set of images, as a solver
# error; FID at $N = 1000$ would be the real test. SD3 chose its shift for images of about a million
# pixels (1024×1024).
#
# ## 9. Exercises
#
# **Exercise 1.** A flow model at $t = 0.25$ sees a pixel $x_t = 0.5$ and predicts $\hat v = -1.2$ there.
# What are the $\hat x_0$ and the $\hat\varepsilon$ it implies? Work them out from §1 and §4, then check
# with `ddpm_teach.exercises.nb11.check_x0_and_eps((x0_hat, eps_hat))`.
#
# **Exercise 2.** On the course's linear schedule ($T = 1000$), which flow time $t \in [0, 1]$ does the
# DDPM timestep with (0-based) index 500 correspond to? Give at least 3 decimals and check with
# `ddpm_teach.exercises.nb11.check_flow_time(t)`. (Compute it from `schedule.alphas_cumprod`.)
#
# **Exercise 3.** You may spend at most **25 network evaluations** per image. How many steps can
# `FlowEulerSampler` take, and how many `FlowHeunSampler`? Take the largest number of steps that fits
# each budget, and check with `ddpm_teach.exercises.nb11.check_budget_steps((euler_steps, heun_steps))`.
#
# **Exercise 4.** One pixel of a 2-step Euler path is $x = 1.0$ at $t = 1$, $0.6$ at $t = 0.8$ and $0.2$
# at $t = 0$. What is its straightness $S$ (§6's definition, as `path_straightness` computes it, but by
# hand)? Check with `ddpm_teach.exercises.nb11.check_straightness(S)`.
#
# Try them in the next cell; a worked solution to each is in **Solutions** at the end of the notebook
# (hidden; click to show).

# %%
ddpm_teach.course.section("9. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb11.check_x0_and_eps((..., ...))
# ddpm_teach.exercises.nb11.check_flow_time(...)
# ddpm_teach.exercises.nb11.check_budget_steps((..., ...))
# ddpm_teach.exercises.nb11.check_straightness(...)

# %% [markdown]
# ## Summary
#
# * **The path.** Flow matching joins data and noise by the straight line $x_t = (1-t)x_0 + t\varepsilon$,
#   $t \in [0, 1]$ ($t = 0$ data, as in DDPM), with the constant velocity $v = \varepsilon - x_0$. DDPM's
#   $\sqrt{\bar\alpha}x_0 + \sqrt{1-\bar\alpha}\varepsilon$ moves along a quarter circle in the plane of
#   the two weights; scaled by $c = 1/(\sqrt{\bar\alpha} + \sqrt{1-\bar\alpha})$ each of its points lies on
#   the straight line.
# * **What the network learns.** Trained on one pair at a time, it learns the average velocity
#   $v^*(x, t) = \mathbb E[\varepsilon - x_0 \mid x_t = x]$ (Lipman et al. Theorem 2: the same gradients as regressing on $v^*$), whose ODE carries noise
#   to data along curved, non-crossing paths (the 1-D toy, exactly).
# * **The loss** $\lVert(\varepsilon - x_0) - v_\theta(x_t, t)\rVert^2$ with $t \sim \mathcal U(0, 1)$ is
#   `flow.flow_loss`, checked by hand; the UNet sees $t \cdot 999$ so that its sinusoidal embedding
#   spans the range it was built for. `TrainConfig(objective="flow")` trains it with notebook 04's machinery.
# * **Sampling** solves $dx/dt = v_\theta$ from $t = 1$ to 0: Euler (one call per step) and Heun (two
#   calls on *every* step, since $v$ is finite at $t = 0$), checked by hand against `FlowEulerSampler`
#   and `FlowHeunSampler`. The optimal velocity makes one Euler step land on the data mean; §4 measures
#   how close the shipped model comes.
# * **Flow against diffusion** at equal NFE: §5 reads classifier-FID against NFE, with $N$ and the floor,
#   from `benchmarks/results/flow_vs_diffusion.json` and says at which NFE a gap is resolved.
# * **Straightness** $S$ (Liu et al. 2023) measures how much the sampling paths bend; $S = 0$ would
#   make one Euler step exact. §6 measures it for both models on the same noise.
# * **DDIM is flow Euler**: in the coordinates $c\,x_t$ at flow time $\sqrt{1-\bar\alpha}/(\sqrt{\bar\alpha}
#   + \sqrt{1-\bar\alpha})$, a deterministic DDIM step is an Euler step of the ε-model's velocity
#   $\hat\varepsilon - \hat x_0$; `FlowEulerSampler.from_ddpm_timesteps` on `EpsAsVelocity` reproduces DDIM
#   to float32 rounding. What differs between the two models is the velocity field, not the solver (§5's
#   DDIM rows also clip $\hat x_0$ and keep DDIM's own grid).
# * **SD3** draws training times from a logit-normal (more weight in the middle of the path) and shifts the
#   sampling grid towards the noise at high resolution (`flow_time_grid(K, shift)`); §8 prints whether the
#   course's benchmark measures logit-normal training.
#
# **Further reading.** Lipman et al. 2023 (conditional flow matching, other paths); Liu et al. 2023
# (rectified flow, reflow, distillation into one step); Albergo & Vanden-Eijnden 2023 and Albergo et al.
# 2023 (stochastic interpolants: DDPM and flow matching as special cases); Tong et al. 2024
# (minibatch optimal-transport couplings, which pair noise and data so the lines cross less);
# Lipman et al. 2024, *Flow Matching Guide and Code*. The [Glossary](glossary.md) collects the notation.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of §9. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# Follow the straight line with the velocity: back to t = 0 is a time t, on to t = 1 a time 1 − t.
t, x_t_pixel, v_pixel = 0.25, 0.5, -1.2
x0_hat = x_t_pixel - t * v_pixel                 # x̂_0 = x_t − t·v̂ = 0.8
eps_hat = x_t_pixel + (1 - t) * v_pixel          # ε̂ = x_t + (1 − t)·v̂ = −0.4
as_tensor = torch.tensor([x_t_pixel])
assert math.isclose(float(flow_x0_from_v(as_tensor, t, v=torch.tensor([v_pixel]))), x0_hat, rel_tol=1e-6)
assert math.isclose(float(flow_eps_from_v(as_tensor, t, v=torch.tensor([v_pixel]))), eps_hat, rel_tol=1e-6)
ddpm_teach.exercises.nb11.check_x0_and_eps((x0_hat, eps_hat))

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# Scale x_t = √ᾱ·x_0 + √(1−ᾱ)·ε so that its weights add up to 1: the noise weight is the flow time.
alpha_bar_500 = float(schedule.alphas_cumprod[500])
flow_time_500 = math.sqrt(1 - alpha_bar_500) / (math.sqrt(alpha_bar_500) + math.sqrt(1 - alpha_bar_500))
assert math.isclose(flow_time_500, float(ddpm_time_to_flow(schedule, 500)), rel_tol=1e-6)
ddpm_teach.exercises.nb11.check_flow_time(flow_time_500)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
# Euler: 1 call per step. The flow Heun: 2 calls on every step, the last one included, so K steps cost 2K ≤ 25.
answer_3 = (25, 12)
assert FlowEulerSampler(steps=25).nfe == 25 and FlowHeunSampler(steps=12).nfe == 24 and FlowHeunSampler(steps=13).nfe == 26
ddpm_teach.exercises.nb11.check_budget_steps(answer_3)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 4 (double-click to show the code)
# v_i = Δx_i/Δt_i, D = (x(t_K) − x(t_0))/(t_K − t_0) (= x_1 − x_0 in §6's notation: x_1 noise, x_0 sample),
# S = Σ |Δt_i|/|t_K − t_0| · (D − v_i)².
times_4, xs_4 = (1.0, 0.8, 0.0), (1.0, 0.6, 0.2)
velocities = [(xs_4[i + 1] - xs_4[i]) / (times_4[i + 1] - times_4[i]) for i in range(2)]     # 2, 0.5
line_velocity = (xs_4[-1] - xs_4[0]) / (times_4[-1] - times_4[0])                          # 0.8
S_by_hand = sum(abs(times_4[i + 1] - times_4[i]) / abs(times_4[-1] - times_4[0]) * (line_velocity - velocities[i]) ** 2
                for i in range(2))
assert math.isclose(S_by_hand, path_straightness(torch.tensor(times_4, dtype=torch.float64),
                                                     torch.tensor(xs_4, dtype=torch.float64).reshape(3, 1, 1, 1, 1)),
                    rel_tol=1e-9)
ddpm_teach.exercises.nb11.check_straightness(S_by_hand)

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
# ← [10 · Latent diffusion](10_latent_diffusion.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [12 · Your own images →](12_your_own_images.ipynb)
