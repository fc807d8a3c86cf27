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
# # 08 · Learned variance (Improved DDPM)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/08_learned_variance.ipynb)
#
# ← [07 · Classifier-free guidance](07_guidance.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [09 · Fast samplers →](09_fast_samplers.ipynb)
#
# In notebook 05 every reverse step $p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)$
# had a **fixed** variance: $\sigma_t^2 = \tilde\beta_t$ or $\sigma_t^2 = \beta_t$. DDPM (Ho et al. 2020,
# [arXiv:2006.11239](https://arxiv.org/abs/2006.11239), §3.2) found the two choices gave similar samples
# with all 1000 steps, and only trained the mean. Nichol & Dhariwal 2021, *Improved Denoising Diffusion
# Probabilistic Models* ([arXiv:2102.09672](https://arxiv.org/abs/2102.09672)), let the network
# **learn** $\sigma_t^2$ as well, between those two ends. Their main reasons: a better likelihood
# (the variational bound cares about the variance, at small $t$ most of all), and sampling with far fewer
# steps, where the two fixed choices are no longer close.
#
# **Learning goals.** By the end you can
# 1. say where $\beta_t$ and $\tilde\beta_t$ differ (only near $t = 0$ for $T = 1000$) and why the
#    variance still matters for the variational bound there;
# 2. read a learned-variance model's output: $2C$ channels, $\hat\varepsilon$ and an interpolation
#    weight $v$, with $\log\sigma^2 = v\log\beta_t + (1-v)\log\tilde\beta_t$ (Improved DDPM eq. 15);
# 3. compute the terms of the variational bound: the KL between two Gaussians and the discretised
#    decoder likelihood at $t = 0$, and say what the best $\sigma_t^2$ is for a given mean;
# 4. write the hybrid loss $L_\text{simple} + \lambda L_\text{vlb}$ (eq. 16) and show with autograd that
#    the stop-gradient keeps $L_\text{vlb}$ away from the mean;
# 5. respace a 1000-step process to $K$ steps (Improved DDPM §4) and explain why a learned variance
#    helps there;
# 6. measure it: learned against fixed variances at 25, 50 and 100 DDPM steps, with classifier-FID.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-11-22): 200 s
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-02, 12-07): 232-316 s (four runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 17-18 s (AMD, 2026-12-07).
#   Slower with no native bf16, fewer cores or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - Most of it is the sampling and scoring of section 8 (4 configurations × (25 + 50 + 100) steps × 96 images).
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest) sets the number of images per
# measured cell, the step counts measured and the number of test images used to probe the model. The
# maths, shape and schedule cells print the same at both sizes and are checked by `pytest --nbval`;
# cells whose output depends on the size or on the trained weights are marked `NBVAL_IGNORE_OUTPUT`.

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

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports and the size knob")      # the last cell prints the time per section

import math

import matplotlib.pyplot as plt
import matplotlib.ticker
import torch

import ddpm_teach.exercises.nb08
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, timed
from ddpm_teach.data import load_dataset
from ddpm_teach.evaluation import Evaluator, frechet_distance, gaussian_stats
from ddpm_teach.forward import predict_x0_from_eps, q_posterior, q_sample
from ddpm_teach.losses import (discretized_gaussian_log_likelihood, hybrid_loss, learned_log_variance, normal_kl,
                               simple_loss, vlb_terms)
from ddpm_teach.plotting import show_images
from ddpm_teach.samplers import DDPMSampler, sample
from ddpm_teach.schedules import NoiseSchedule

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" or "ci"
N_EVAL = by_size(full=96, ci=16)           # images per cell of the measured comparison (section 8)
STEP_COUNTS = by_size(full=(25, 50, 100), ci=(10, 25))   # DDPM steps measured in section 8
N_PROBE = by_size(full=64, ci=16)          # test images used to probe the learned v over t (section 6)

# %% [markdown]
# ## 1. Why learn the variance? $\beta_t$ against $\tilde\beta_t$
#
# The reverse step of DDPM is a Gaussian (DDPM eq. 1)
#
# $$p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(x_{t-1};\ \mu_\theta(x_t, t),\ \Sigma_\theta(x_t, t)\big).$$
#
# DDPM fixed $\Sigma_\theta = \sigma_t^2 I$ to one of two values (their §3.2):
#
# * $\sigma_t^2 = \beta_t$, the forward step's own variance ("fixed_large"). It is the right reverse variance
#   if $x_0 \sim \mathcal N(0, I)$: the model knows nothing about $x_0$.
# * $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t$, the variance of the
#   forward-process posterior $q(x_{t-1} \mid x_t, x_0)$ (DDPM eq. 7, "fixed_small"). It is the right
#   one if $x_0$ is known exactly.
#
# These are the upper and lower ends of the reverse variance (DDPM §3.2). Since
# $\tilde\beta_t/\beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t) < 1$, $\tilde\beta_t$ is always the smaller.
# How far apart are they? The schedule answers it, no model needed. (Index convention: 0-based $t$,
# index 0 is the paper's $t = 1$; there $\tilde\beta = 0$, because $x_{t-1}$ *is* $x_0$, and the package
# clips $\log\tilde\beta$ to its value at index 1, as improved-diffusion does.)

# %%
ddpm_teach.course.section("1. β_t against β̃_t")
T = 1000
schedule = NoiseSchedule.from_name("linear", T)          # the shipped models' schedule (checked below)
log_gap = schedule.betas.log() - schedule.posterior_log_variance_clipped   # log β_t − log β̃_t, [T]

print(f"{'t':>5}{'β_t':>11}{'β̃_t':>11}{'β̃_t/β_t':>10}{'log β − log β̃':>16}")
for t in (0, 1, 2, 5, 10, 50, 100, 500, 999):
    beta, beta_tilde = schedule.betas[t].item(), schedule.posterior_variance[t].item()
    print(f"{t:>5}{beta:>11.3e}{beta_tilde:>11.3e}{beta_tilde / beta:>10.4f}{log_gap[t].item():>16.4f}")
print(f"\nthe gap is below 0.01 (β and β̃ within 1%) from t = {int((log_gap < 0.01).nonzero()[0])} on, "
      f"i.e. for {(log_gap < 0.01).double().mean():.1%} of the {T} steps")

# %%
paper_t = torch.arange(1, T + 1)                          # the paper's t = index + 1 (for log axes)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].loglog(paper_t, schedule.betas, label="β_t (fixed_large)")
axes[0].loglog(paper_t[1:], schedule.posterior_variance[1:], label="β̃_t (fixed_small)")
axes[0].set(xlabel="paper's t = index + 1 (log scale)", ylabel="variance", title="the two fixed reverse variances")
axes[1].semilogx(paper_t, log_gap, color="C3")
axes[1].set(xlabel="paper's t = index + 1 (log scale)", ylabel="log β_t − log β̃_t",
            title="their gap: large only near t = 0 (cf. Improved DDPM Fig. 1)")
for ax in axes:
    ax.grid(True, which="both", alpha=0.3)
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# With all 1000 steps the two choices agree to within 4% from $t = 50$ on and to within 1% from $t = 168$
# on (83% of the steps); they differ a lot only in the first few steps (a factor 2.2 at $t = 1$). That is
# why DDPM saw no difference in sample quality. So why learn anything?
#
# 1. **Likelihood.** The variational bound (DDPM eq. 5) is a sum of per-step terms, and Improved DDPM
#    (§3.1, Fig. 2) shows that the first few steps, exactly where $\beta$ and $\tilde\beta$ differ,
#    contribute most of it. A good $\sigma_t^2$ there improves the log-likelihood.
# 2. **Few-step sampling.** Sampling with $K \ll T$ steps (section 7) makes each step a big jump, and
#    then the two ends are far apart at *every* step. A wrong fixed choice then costs sample quality.
#
# ## 2. The model outputs $2C$ channels: $\hat\varepsilon$ and $v$
#
# A learned-variance UNet (`UNetConfig(learn_sigma=True)`) has twice the output channels: the first $C$
# are $\hat\varepsilon$ as before, the other $C$ are a raw interpolation value $v_\text{raw}$, one per pixel
# (`v_raw` in the package; `v` is always the paper's weight of section 3). The shipped checkpoint
# `fashion_mnist_learned_var.pt` is such a model, trained with the hybrid loss of section 5 in 20 minutes on a
# 2-core CPU, with EMA weights (section 8 prints its training steps; `checkpoints/README.md` has the command
# that made it).

# %%
ddpm_teach.course.section("2. 2C output channels")
model, lv_schedule, lv_ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_learned_var.pt"))
torch.testing.assert_close(lv_schedule.betas, schedule.betas)      # the same linear T = 1000 schedule
config, train_config = model.config, lv_ckpt["train_config"]
print(f"learn_sigma={config.learn_sigma}: {config.in_channels} input channel(s), {config.out_channels} output channels; "
      f"{model.num_parameters():,} parameters")
print(f"trained with the hybrid loss: learn_sigma={train_config['learn_sigma']}, λ = vlb_weight = {train_config['vlb_weight']}")

data = load_dataset("fashion_mnist", train=False)
x0, _ = data.batch([0, 1, 2, 3])                                   # (4, 1, 28, 28) in [-1, 1]
t = torch.tensor([0, 10, 100, 500])
x_t = q_sample(schedule, x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
with torch.no_grad():
    model_output = model(x_t, t)                                   # (4, 2C, 28, 28)
eps_pred, v_raw = model_output.chunk(2, dim=1)                     # (4, C, 28, 28) each
print(f"x_t {tuple(x_t.shape)} → model output {tuple(model_output.shape)} → ε̂ {tuple(eps_pred.shape)} "
      f"and v_raw {tuple(v_raw.shape)}")

# %% [markdown]
# ## 3. Eq. 15: interpolating between $\beta_t$ and $\tilde\beta_t$ in log space
#
# The variances span several orders of magnitude across $t$, and at small $t$ their ratio is large, so a
# network cannot easily output $\sigma_t^2$ directly. Improved DDPM (§3.1) lets it output a weight $v$
# per dimension and interpolates the **logarithms**:
#
# $$\Sigma_\theta(x_t, t) = \exp\big(v \log\beta_t + (1 - v)\log\tilde\beta_t\big) \qquad \text{(Improved DDPM eq. 15)}.$$
#
# $v = 0$ gives $\tilde\beta_t$, $v = 1$ gives $\beta_t$. The network's raw channel is mapped to it by
# $v = (v_\text{raw} + 1)/2$, so a raw output of $-1$ means $\tilde\beta_t$ and $+1$ means $\beta_t$. There is
# no clamp: the paper put no constraint on $v$ and did not see its networks leave the range in practice
# (section 6 prints how far ours strays). (Careful with names: `v` is the paper's weight everywhere, and
# the package's `learned_log_variance(schedule, v_raw, t)` takes the **raw** output, as improved-diffusion's
# code does; the samplers call the same function.)
# A teaching version, checked against the package:

# %%
ddpm_teach.course.section("3. Eq. 15")
def learned_log_variance_by_hand(schedule: NoiseSchedule, v_raw: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Improved DDPM eq. 15: log σ² = v log β_t + (1 − v) log β̃_t with v = (v_raw + 1)/2.  v_raw [B, C, H, W], t [B]."""
    v = (v_raw + 1) / 2                                                        # the paper's v
    log_beta = schedule.betas.log()[t].view(-1, 1, 1, 1)                       # (B, 1, 1, 1)
    log_beta_tilde = schedule.posterior_log_variance_clipped[t].view(-1, 1, 1, 1)
    return v * log_beta + (1 - v) * log_beta_tilde


generator = torch.Generator().manual_seed(1)
v_raw_draws = 2 * torch.rand(8, 1, 5, 5, generator=generator, dtype=torch.float64) - 1   # raw outputs in [-1, 1]
ts = torch.randint(0, T, (8,), generator=generator)
torch.testing.assert_close(learned_log_variance_by_hand(schedule, v_raw_draws, ts),
                           learned_log_variance(schedule, v_raw_draws, ts))
torch.testing.assert_close(learned_log_variance_by_hand(schedule, v_raw.double(), t),
                           learned_log_variance(schedule, v_raw.double(), t))
print("learned_log_variance_by_hand matches ddpm_teach.losses.learned_log_variance")

# the end points: raw −1 → β̃_t, raw +1 → β_t, raw 0 → the geometric mean √(β_t β̃_t)
for raw_value, name in ((-1.0, "β̃_t"), (1.0, "β_t"), (0.0, "√(β_t β̃_t)")):
    sigma2 = learned_log_variance(schedule, torch.full((1, 1, 1, 1), raw_value, dtype=torch.float64), torch.tensor([1])).exp()
    print(f"raw output {raw_value:+.0f} at t = 1:  σ² = {sigma2.item():.4e}   ({name})")
print(f"β_1 = {schedule.betas[1]:.4e}, β̃_1 = {schedule.posterior_variance[1]:.4e}, "
      f"√(β_1 β̃_1) = {(schedule.betas[1] * schedule.posterior_variance[1]).sqrt():.4e}")

# %% [markdown]
# ### Exercise 1: one learned variance by hand
#
# For the linear schedule with $T = 1000$, what is $\sigma^2$ at the 0-based timestep $t = 1$ (the
# paper's $t = 2$) when the paper's interpolation weight is $v = 0.3$? Three significant digits are enough.
# Check it with `ddpm_teach.exercises.nb08.check_learned_variance(your_answer)`.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click
# to show).

# %%
# Your answer: uncomment, fill in and run.
# ddpm_teach.exercises.nb08.check_learned_variance(...)

# %% [markdown]
# ## 4. The variational bound: what the variance is trained on
#
# $L_\text{simple}$ (DDPM eq. 14) does not depend on $\Sigma_\theta$ at all, so the variance has to be
# trained on the variational bound itself (DDPM eq. 5, Improved DDPM §2.1):
#
# $$L_\text{vlb} = \underbrace{D_\text{KL}\big(q(x_T \mid x_0)\,\|\,p(x_T)\big)}_{L_T}
#  + \sum_{t>1} \underbrace{D_\text{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t)\big)}_{L_{t-1}}
#  \underbrace{-\log p_\theta(x_0 \mid x_1)}_{L_0}.$$
#
# $L_T$ has no parameters. Every $L_{t-1}$ is a KL between two Gaussians with diagonal covariance, and
# $L_0$ is the negative log-likelihood of the 8-bit image under the last Gaussian step.
#
# ### 4a. The KL between two Gaussians
#
# Per dimension, in nats,
#
# $$D_\text{KL}\big(\mathcal N(\mu_1, \sigma_1^2)\,\|\,\mathcal N(\mu_2, \sigma_2^2)\big)
#   = \tfrac12\Big(-1 + \log\sigma_2^2 - \log\sigma_1^2 + \frac{\sigma_1^2}{\sigma_2^2} + \frac{(\mu_1-\mu_2)^2}{\sigma_2^2}\Big).$$
#
# A teaching version, checked against `ddpm_teach.losses.normal_kl` and against PyTorch's own
# `torch.distributions.kl_divergence`:

# %%
ddpm_teach.course.section("4. The variational bound")
def normal_kl_by_hand(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + (logvar1 - logvar2).exp() + (mean1 - mean2) ** 2 / logvar2.exp())


generator = torch.Generator().manual_seed(2)
mean1, mean2 = torch.randn(2, 6, generator=generator, dtype=torch.float64)
logvar1, logvar2 = torch.randn(2, 6, generator=generator, dtype=torch.float64)
kl = normal_kl(mean1, logvar1, mean2, logvar2)
torch.testing.assert_close(normal_kl_by_hand(mean1, logvar1, mean2, logvar2), kl)
reference = torch.distributions.kl_divergence(torch.distributions.Normal(mean1, (0.5 * logvar1).exp()),
                                              torch.distributions.Normal(mean2, (0.5 * logvar2).exp()))
torch.testing.assert_close(kl, reference)
print("normal_kl_by_hand = ddpm_teach.losses.normal_kl = torch.distributions.kl_divergence on 6 random pairs")
print("KL values (nats):", [round(value, 4) for value in kl.tolist()])
print("KL of a Gaussian with itself is 0:", bool(normal_kl(mean1, logvar1, mean1, logvar1).abs().max() < 1e-12))

# %% [markdown]
# In $L_{t-1}$ the first Gaussian is the posterior $\mathcal N(\tilde\mu_t, \tilde\beta_t)$ and the
# second is the model's $\mathcal N(\mu_\theta, \sigma_t^2)$. Write $e = (\tilde\mu_t - \mu_\theta)^2$ for
# the mean's squared error. The KL is $\frac12\big(\frac{\tilde\beta_t + e}{\sigma_t^2} - 1 - \log\frac{\tilde\beta_t}{\sigma_t^2}\big)$,
# and setting its derivative in $\sigma_t^2$ to zero gives the **best variance for a given mean**:
#
# $$\sigma_t^{2\,*} = \tilde\beta_t + e.$$
#
# A perfect mean wants $\tilde\beta_t$ ($v = 0$); the less the model knows about $x_0$, the larger the
# variance it should use. That is what the $v$ channel learns. Section 6 compares it with this oracle.
#
# ### 4b. The discretised decoder at $t = 0$
#
# Pixels are 8-bit: 256 values, mapped to $[-1, 1]$ in steps of $2/255$. DDPM (§3.3, eq. 13) makes the
# last step a proper discrete distribution: the probability of a pixel value $x$ is the mass of
# $\mathcal N(\mu_\theta, \sigma_1^2)$ on its bin $[x - 1/255,\ x + 1/255]$, with the two edge bins
# extended outwards (the bin of $x = -1$ down to $-\infty$, the bin of $x = +1$ up to $+\infty$), so that the
# 256 probabilities add up to 1. In DDPM's notation, over the $D$ pixels $x_0^i$, with
# $\delta_+(x) = x + 1/255$ ($+\infty$ if $x = 1$) and $\delta_-(x) = x - 1/255$ ($-\infty$ if $x = -1$):
#
# $$p_\theta(x_0 \mid x_1) = \prod_{i=1}^{D} \int_{\delta_-(x_0^i)}^{\delta_+(x_0^i)} \mathcal N(x;\ \mu_\theta^i(x_1, 1),\ \sigma_1^2)\,dx .$$
#
# The package function takes the log standard deviation, $\log\sigma = \frac12\log\sigma^2$.

# %%
def discretized_log_likelihood_by_hand(x, mean, log_scale):
    """log P(pixel value x) for x on the 8-bit grid in [-1, 1] under N(mean, e^{2 log_scale}), per element."""
    normal = torch.distributions.Normal(mean, log_scale.exp())
    upper = torch.where(x > 0.999, torch.ones_like(x), normal.cdf(x + 1 / 255))     # right edge bin: up to +∞
    lower = torch.where(x < -0.999, torch.zeros_like(x), normal.cdf(x - 1 / 255))   # left edge bin: from −∞
    return (upper - lower).log()


pixel_values = torch.arange(256, dtype=torch.float64) / 127.5 - 1                   # the 256 grid points
x = pixel_values[torch.tensor([0, 1, 100, 128, 254, 255])]                          # both edges and the middle
mean = torch.tensor([-0.98, -0.98, -0.2, 0.0, 0.97, 0.97], dtype=torch.float64)
log_scale = torch.full_like(mean, 0.5 * math.log(1e-3))                             # σ² = 1e-3
torch.testing.assert_close(discretized_log_likelihood_by_hand(x, mean, log_scale),
                           discretized_gaussian_log_likelihood(x, mean=mean, log_scale=log_scale))
print("discretized_log_likelihood_by_hand matches ddpm_teach.losses.discretized_gaussian_log_likelihood")
print("log p per pixel (nats):", [round(p, 4) for p in discretized_gaussian_log_likelihood(x, mean=mean, log_scale=log_scale).tolist()])

# the 256 bin probabilities of any one Gaussian add up to 1
for mu, sigma2 in ((0.0, 1e-3), (-0.99, 1e-4), (0.5, 0.3)):
    log_p = discretized_gaussian_log_likelihood(pixel_values, mean=torch.full_like(pixel_values, mu),
                                                log_scale=torch.full_like(pixel_values, 0.5 * math.log(sigma2)))
    print(f"mean {mu:+.2f}, σ² = {sigma2:g}: the 256 probabilities sum to {log_p.exp().sum().item():.6f}")

# %% [markdown]
# ### 4c. $L_t$ as the package computes it, and where the variance matters
#
# `ddpm_teach.losses.vlb_terms(schedule, eps_pred=ε̂, v_raw=..., x0=x_0, x_t=x_t, t=t)` puts these together (its
# tensors are passed by name: they all have one shape, and a swap must not pass silently): the model's mean is
# the posterior mean at $\hat x_0$ (from $\hat\varepsilon$, DDPM eq. 15 and eq. 7), its variance comes
# from eq. 15, and it returns the KL for $t > 0$ and the decoder NLL for $t = 0$, averaged over the
# dimensions and converted to **bits per dimension**.
#
# A clean experiment without any model: give it the *true* noise, so that the mean is exact ($e = 0$),
# and compare the two fixed variances. With $\sigma^2 = \tilde\beta_t$ the KL must vanish; with
# $\sigma^2 = \beta_t$ it is $\frac12\big(r - 1 - \log r\big)$ with $r = \tilde\beta_t/\beta_t$, in nats, at
# every pixel.

# %%
x0_test, _ = data.batch(list(range(8)))
x0_test = x0_test.double()                                              # (8, 1, 28, 28), float64 for clean zeros
noise = torch.randn(x0_test.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
minus_one, plus_one = -torch.ones_like(noise), torch.ones_like(noise)  # v_raw: σ² = β̃ and σ² = β

print(f"{'t':>5}{'L_t, σ²=β̃ (bits/dim)':>24}{'L_t, σ²=β (bits/dim)':>23}{'closed form, σ²=β':>20}")
for t_value in (0, 1, 2, 5, 10, 50, 100, 500, 999):
    t_batch = torch.full((8,), t_value)
    x_t_test = q_sample(schedule, x0_test, t_batch, noise)
    small = vlb_terms(schedule, eps_pred=noise, v_raw=minus_one, x0=x0_test, x_t=x_t_test, t=t_batch).mean().item()
    large = vlb_terms(schedule, eps_pred=noise, v_raw=plus_one, x0=x0_test, x_t=x_t_test, t=t_batch).mean().item()
    r = (schedule.posterior_variance[t_value] / schedule.betas[t_value]).item()
    closed = 0.5 * (r - 1 - math.log(r)) / math.log(2) if t_value > 0 else float("nan")
    print(f"{t_value:>5}{round(small, 4) + 0.0:>24.4f}{large:>23.4f}{closed:>20.4f}")   # + 0.0: no "-0.0000"

# %% [markdown]
# Three things to read off:
#
# * For $t > 0$ with the exact mean, $\tilde\beta_t$ costs nothing and $\beta_t$ costs
#   $\frac12(r - 1 - \log r)$ nats (divided by $\log 2$ in the table, for bits): large at $t = 1, 2$, negligible after a few dozen steps, where
#   $r \approx 1$. The variance matters where $\beta$ and $\tilde\beta$ differ.
# * At $t = 0$ even the exact mean pays about a bit per pixel: the Gaussian's mass spills into the
#   neighbouring bins. Here the larger variance is *worse*, because the mean is exact.
# * With a real model the mean is not exact ($e > 0$), so the best variance moves up from $\tilde\beta_t$
#   towards $\beta_t$ (section 4a). That is the trade-off $v$ learns.
#
# ## 5. The hybrid loss and its stop-gradient
#
# Training on $L_\text{vlb}$ alone gives good likelihoods but worse samples, and its gradients are very
# noisy (Improved DDPM §3.1, §3.3). So they keep $L_\text{simple}$ for the mean and add a small
# multiple of the bound:
#
# $$L_\text{hybrid} = L_\text{simple} + \lambda\, L_\text{vlb}, \qquad \lambda = 0.001 \qquad \text{(Improved DDPM eq. 16)},$$
#
# and in $L_\text{vlb}$ they **stop the gradient** through $\mu_\theta$: the bound may only train the
# variance; the mean is trained by $L_\text{simple}$ alone. One uniformly drawn $t$ per image estimates
# $L_\text{vlb} = \sum_t L_t$ as $T \cdot L_t$, so `ddpm_teach.losses.hybrid_loss` returns
# $L_\text{simple} + \lambda\,T\,L_t$ (with $T = 1000$ the weight $\lambda T$ is 1, as in improved-diffusion's
# code). Inside, it splits the output and passes `eps_pred.detach()` to `vlb_terms`.
#
# Autograd shows what the detach does. We take the model's output on four noisy images and ask which
# output channels each part of the loss sends gradient to.

# %%
ddpm_teach.course.section("5. The hybrid loss")
x0_four, _ = data.batch([4, 5, 6, 7])
t_four = torch.tensor([0, 3, 40, 700])
noise_four = torch.randn(x0_four.shape, generator=torch.Generator().manual_seed(4))
x_t_four = q_sample(schedule, x0_four, t_four, noise_four)
output = model(x_t_four, t_four)                                  # (4, 2, 28, 28), part of the autograd graph
eps_part, v_raw_part = output.chunk(2, dim=1)

def output_gradient(loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d loss / d model output, split into its ε channels and its v_raw channels."""
    grad, = torch.autograd.grad(loss, output, retain_graph=True)
    return grad.chunk(2, dim=1)

loss, parts = hybrid_loss(schedule, output, noise=noise_four, x0=x0_four, x_t=x_t_four, t=t_four, vlb_weight=0.001)
grad_eps, grad_v_raw = output_gradient(loss)
simple_grad_eps, simple_grad_v_raw = output_gradient(simple_loss(eps_part, noise_four))
four = dict(x0=x0_four, x_t=x_t_four, t=t_four)
vlb_grad_eps, vlb_grad_v_raw = output_gradient(vlb_terms(schedule, eps_pred=eps_part.detach(), v_raw=v_raw_part, **four).mean())
leaky_grad_eps, _ = output_gradient(vlb_terms(schedule, eps_pred=eps_part, v_raw=v_raw_part, **four).mean())

print("L_vlb (ε̂ detached):  gradient on the ε channels is exactly zero:", bool((vlb_grad_eps == 0).all()))
print("                      gradient on the v channels is non-zero:    ", bool((vlb_grad_v_raw != 0).any()))
print("L_simple:             gradient on the v channels is exactly zero:", bool((simple_grad_v_raw == 0).all()))
print("hybrid_loss:          ε-channel gradient equals L_simple's alone: ",
      bool(torch.allclose(grad_eps, simple_grad_eps, rtol=0, atol=0)))
print("without the detach:   L_vlb would push the ε channels too:       ", bool((leaky_grad_eps != 0).any()))

# %% [markdown]
# So the mean sees exactly the DDPM gradient, and the bound only steers $v$. The weight is small because
# the bound's terms, scaled by $T$, are large and noisy: it must not drown $L_\text{simple}$. Improved DDPM
# also tried importance-sampling $t$ to train on $L_\text{vlb}$ alone (their §3.3); the hybrid loss is
# what they recommend for sample quality, and what the shipped model used.
#
# ## 6. What the shipped model learned: $v$ over $t$
#
# Now the trained model. We noise `N_PROBE` test images to a range of timesteps (one fixed noise draw
# per timestep), run the model once per timestep, and look at
#
# 1. the learned $v = (v_\text{raw} + 1)/2$, averaged over pixels and images (the band: the spread of the
#    per-image averages), against the oracle $v^*$ that section 4a's $\sigma^{2*} = \tilde\beta_t + e$ gives
#    for this model's own mean error $e$;
# 2. $L_t$ in bits/dim with the learned variance and with the two fixed ones, all with the model's
#    $\hat\varepsilon$ (the figure shows the fixed ones relative to the learned one).
#
# The numbers depend on the trained weights, so this cell's printout is not checked by nbval.

# %%
ddpm_teach.course.section("6. The learned v over t")
# NBVAL_IGNORE_OUTPUT
probe_ts = [0, 1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200, 300, 400, 500, 600, 700, 800, 900, 999]
x0_probe, _ = data.batch(torch.randperm(len(data), generator=torch.Generator().manual_seed(5))[:N_PROBE].tolist())
probe_generator = torch.Generator().manual_seed(6)
probe = {key: [] for key in ("v_mean", "v_spread", "v_oracle", "L_learned", "L_small", "L_large", "raw_min", "raw_max", "raw_outside")}
with timed(f"probing the model at {len(probe_ts)} timesteps with {N_PROBE} test images"), torch.no_grad():
    for t_value in probe_ts:
        t_batch = torch.full((N_PROBE,), t_value)
        x_t_probe = q_sample(schedule, x0_probe, t_batch, torch.randn(x0_probe.shape, generator=probe_generator))
        eps_probe, v_raw_probe = model(x_t_probe, t_batch).chunk(2, dim=1)
        v_per_image = ((v_raw_probe + 1) / 2).mean(dim=(1, 2, 3))                    # the paper's v, (N_PROBE,)
        probe["raw_min"].append(v_raw_probe.min().item())
        probe["raw_max"].append(v_raw_probe.max().item())
        probe["raw_outside"].append((v_raw_probe.abs() > 1).double().mean().item())
        probe["v_mean"].append(v_per_image.mean().item())
        probe["v_spread"].append(v_per_image.std().item())
        # the oracle: σ²* = β̃_t + e, e = the mean's squared error, written as a v (eq. 15 solved for v)
        true_mean, _, _ = q_posterior(schedule, x0=x0_probe, x_t=x_t_probe, t=t_batch)
        pred_x0 = predict_x0_from_eps(schedule, x_t_probe, t_batch, eps_probe)
        model_mean, _, _ = q_posterior(schedule, x0=pred_x0, x_t=x_t_probe, t=t_batch)
        e = ((true_mean - model_mean) ** 2).mean().item()
        beta, beta_tilde = schedule.betas[t_value].item(), schedule.posterior_variance[t_value].item()
        probe["v_oracle"].append(math.log1p(e / beta_tilde) / math.log(beta / beta_tilde) if t_value > 0 else float("nan"))
        for key, v_raw_value in (("L_learned", v_raw_probe), ("L_small", -torch.ones_like(v_raw_probe)),
                                 ("L_large", torch.ones_like(v_raw_probe))):
            probe[key].append(vlb_terms(schedule, eps_pred=eps_probe, v_raw=v_raw_value, x0=x0_probe, x_t=x_t_probe,
                                        t=t_batch).mean().item())

print(f"{'t':>5}{'learned v':>11}{'oracle v*':>11}{'L_t learned':>13}{'L_t β̃':>9}{'L_t β':>9}   (bits/dim)")
for i, t_value in enumerate(probe_ts):
    print(f"{t_value:>5}{probe['v_mean'][i]:>11.3f}{probe['v_oracle'][i]:>11.3f}{probe['L_learned'][i]:>13.4f}"
          f"{probe['L_small'][i]:>9.4f}{probe['L_large'][i]:>9.4f}")
sum_over_probe = {key: sum(probe[key][:8]) for key in ("L_learned", "L_small", "L_large")}
print("\nL_t summed over the probed t ≤ 20:  " + ",  ".join(f"{key[2:]}: {total:.3f}" for key, total in sum_over_probe.items()))
print(f"v_raw channel over all probes: min {min(probe['raw_min']):.2f}, max {max(probe['raw_max']):.2f}; "
      f"{sum(probe['raw_outside']) / len(probe_ts):.2%} of the values lie outside [-1, 1] (σ² outside [β̃_t, β_t])")
at = {t_value: i for i, t_value in enumerate(probe_ts)}                 # probe index of each timestep
for t_value in (0, 1):                                                     # t = 0 is the decoder NLL
    excess = {key: probe[key][at[t_value]] / probe["L_learned"][at[t_value]] - 1 for key in ("L_small", "L_large")}
    print(f"at t = {t_value} the fixed variances cost more than the learned one: "
          f"β̃_t {excess['L_small']:+.0%}, β_t {excess['L_large']:+.0%}")
gap = max(abs(probe["v_mean"][i] - probe["v_oracle"][i]) for t_value, i in at.items() if 1 <= t_value <= 20)
print(f"largest |learned v − oracle v*| for 1 ≤ t ≤ 20: {gap:.2f}")
late = [i for t_value, i in at.items() if t_value >= 200]
print(f"from t = 200 on: learned v {min(probe['v_mean'][i] for i in late):.2f} to {max(probe['v_mean'][i] for i in late):.2f}, "
      f"oracle v* {min(probe['v_oracle'][i] for i in late):.2f} to {max(probe['v_oracle'][i] for i in late):.2f}")
print(f"largest L_t (learned) from t = 50 on: {max(probe['L_learned'][i] for t_value, i in at.items() if t_value >= 50):.4f} bits/dim")
print("β_t's excess over the learned L_t: " + ", ".join(
    f"{probe['L_large'][at[t_value]] / probe['L_learned'][at[t_value]] - 1:+.1%} at t = {t_value}" for t_value in (12, 300, 400, 999)))
last = at[probe_ts[-1]]                                                    # the right panel's last points
print(f"at t = {probe_ts[-1]}: L_t(β̃_t) / L_t(learned) = {probe['L_small'][last] / probe['L_learned'][last]:.3f}, "
      f"L_t(β_t) / L_t(learned) = {probe['L_large'][last] / probe['L_learned'][last]:.3f}; "
      f"the learned L_t there is {probe['L_learned'][last]:.1e} bits/dim")

# %%
x_axis = [t_value + 1 for t_value in probe_ts]                    # the paper's t, for a log axis
v_mean, v_spread = torch.tensor(probe["v_mean"]), torch.tensor(probe["v_spread"])
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].semilogx(x_axis, v_mean, "o-", color="C2", label="learned v (mean over pixels and images)")
axes[0].fill_between(x_axis, v_mean - v_spread, v_mean + v_spread, color="C2", alpha=0.2, label="± spread over images")
axes[0].semilogx(x_axis, probe["v_oracle"], "s--", color="C4", label="oracle v* from the model's mean error")
axes[0].axhline(1, color="C0", lw=1.5, ls=":", label="v = 1: σ² = β_t (fixed_large)")
axes[0].axhline(0, color="C1", lw=1.5, ls=":", label="v = 0: σ² = β̃_t (fixed_small)")
axes[0].set(xlabel="paper's t = index + 1 (log scale)", ylabel="v", ylim=(-0.15, 2.0),
            title="the learned interpolation weight v over t")
axes[0].legend(fontsize=8, loc="upper left")
learned_L = torch.tensor(probe["L_learned"])
for key, label, style, colour in (("L_small", "σ² = β̃_t (fixed_small)", "s--", "C1"), ("L_large", "σ² = β_t (fixed_large)", "^--", "C0")):
    axes[1].semilogx(x_axis, torch.tensor(probe[key]) / learned_L, style, color=colour, label=label, ms=4)
axes[1].axhline(1, color="C2", lw=1.5, label="learned σ² (the reference, 1)")
axes[1].set(xlabel="paper's t = index + 1 (log scale)", ylabel="L_t(fixed) / L_t(learned)",
            title="VLB term L_t with a fixed variance, relative to the learned one\n(t = 1 is the decoder NLL L_0)")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# How to read it (the exact curves depend on how long the model trained, so the numbers are in the printout
# above; its $t$ is the 0-based index, one less than the paper's $t$ on the figure's axes):
#
# * **Small $t$, where it matters.** Here $\beta$ and $\tilde\beta$ differ and $v$ gets a real gradient.
#   The learned variance should give the lowest $L_t$ of the three there (ratios above 1 in the right
#   panel): check the first rows of the table, the sums over the probed $t \le 20$, and the lines that give
#   the fixed variances' excess at $t = 0$ and $t = 1$. Its $v$ should also follow the oracle: look for the
#   two curves together at small $t$, with the learned $v$ possibly a little below $v^*$ at the very first
#   steps (the printout gives the largest gap for $1 \le t \le 20$). The oracle is only a guide: it is the
#   best *single* $\sigma^2$ for all pixels at that $t$, while $v$ is chosen per pixel. It sits well above 0
#   at the first steps: the model's mean is not exact, so $\tilde\beta_t$ is too small.
# * **Large $t$, where it does not.** The gradient of $L_t$ with respect to $v$ is proportional to the gap
#   $\log\beta_t - \log\tilde\beta_t \approx 0$, so almost nothing trains $v$ there and it stays near
#   whatever the network outputs by default (the printout gives its range from $t = 200$ on, next to the
#   oracle's). It costs next to nothing: $L_t$ is tiny from about $t = 50$ on (the printout gives the
#   largest), the learned and the $\tilde\beta_t$ columns agree to several decimals, and $\beta_t$'s excess
#   over the learned term shrinks as $t$ grows (printed at a few $t$; the last, $t = 999$, is a ratio of
#   terms too small to matter, and may even come out negative, as the oracle allows). The oracle climbs
#   over the last few hundred steps and passes 1 only at the very end (the last rows of the printout),
#   leaving the plot. A tiny error in $\hat\varepsilon$ becomes a large error in $\hat x_0$ (it is divided
#   by $\sqrt{\bar\alpha_t} \approx 0$), and $v^* > 1$ says the best variance lies above even $\beta_t$. So at
#   $t = 999$ the smallest choice, $\tilde\beta_t$, is the furthest off, and the right panel's last points
#   split (the printout's last line gives both ratios): in the stored run $\tilde\beta_t$'s term is 1.066
#   times the learned one, 6.6% above it, while $\beta_t$'s is 0.983 times, 1.7% below. The learned term
#   there is tiny (printed on the same line), and with $\beta_t \approx \tilde\beta_t$ neither gap has any
#   effect on the loss.
# * **Outside the range.** The paper saw its networks keep $v$ within $[0, 1]$ without a clamp. Check
#   ours in the printout's `v_raw` line: the share of raw values outside $[-1, 1]$ and their range (where
#   $v_\text{raw}$ leaves $[-1, 1]$, $v = (v_\text{raw} + 1)/2$ leaves $[0, 1]$, and those pixels get a
#   $\sigma^2$ a little below $\tilde\beta_t$ or above $\beta_t$). Nothing in eq. 15 forbids it.
# * **Why it matters later:** with 1000 steps, whatever $v$ is barely changes $\sigma^2$ beyond the first
#   few dozen steps. After respacing (next section) the same $v$ interpolates between two variances that are
#   much further apart, most of all at small and middle $t$ (at the noisiest steps they still nearly coincide).
#
# ## 7. Respacing: sampling with $K \ll T$ steps (Improved DDPM §4)
#
# A model trained with $T = 1000$ can be sampled on a subsequence $\tau_0 < \tau_1 < \dots < \tau_{K-1}$
# of timesteps ($\tau$ evenly spaced, first and last included). Since $\bar\alpha_{\tau_i}$ fixes the
# marginal $q(x_{\tau_i} \mid x_0)$, the subsequence defines a shorter diffusion process with
#
# $$\beta'_i = 1 - \frac{\bar\alpha_{\tau_i}}{\bar\alpha_{\tau_{i-1}}}, \qquad
#   \tilde\beta'_i = \frac{1-\bar\alpha_{\tau_{i-1}}}{1-\bar\alpha_{\tau_i}}\,\beta'_i \qquad (\bar\alpha_{\tau_{-1}} = 1),$$
#
# and DDPM sampling runs on that process: `DDPMSampler(schedule, steps=K)` builds it as `.respaced`. The
# model is still called at the original timesteps $\tau_i$; for learned variance, its $v$ at $\tau_i$
# interpolates between $\beta'_i$ and $\tilde\beta'_i$. A teaching version of the respacing, checked
# against the sampler:

# %%
ddpm_teach.course.section("7. Respacing")
def respace_by_hand(schedule: NoiseSchedule, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """τ (ascending), β'_i and β̃'_i of the process respaced to ``steps`` evenly spaced timesteps."""
    tau = torch.linspace(0, schedule.T - 1, steps, dtype=torch.float64).round().long()     # τ_0 = 0, ..., τ_{K−1} = T − 1
    alpha_bar = schedule.alphas_cumprod[tau]
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])   # ᾱ_{τ_{−1}} = 1
    beta = 1 - alpha_bar / alpha_bar_prev                                               # β'_i
    return tau, beta, (1 - alpha_bar_prev) / (1 - alpha_bar) * beta                     # β̃'_i


for K in (25, 50, 100, 1000):
    sampler = DDPMSampler(schedule, steps=K)
    tau, beta_respaced, beta_tilde_respaced = respace_by_hand(schedule, K)
    torch.testing.assert_close(tau, sampler.timesteps.flip(0))
    torch.testing.assert_close(beta_respaced, sampler.respaced.betas)
    torch.testing.assert_close(beta_tilde_respaced, sampler.respaced.posterior_variance)
print("respace_by_hand matches DDPMSampler(schedule, steps=K).timesteps and .respaced for K = 25, 50, 100, 1000")

print(f"\n{'K':>5}{'τ_0, τ_1, τ_2, ...':>22}{'largest β′':>12}{'log β′/β̃′ at i=2':>19}{'median over i ≥ 1':>19}")
respaced_gaps = {}
for K in (1000, 100, 50, 25):
    tau, beta_respaced, beta_tilde_respaced = respace_by_hand(schedule, K)
    gap = (beta_respaced[1:] / beta_tilde_respaced[1:]).log()                          # i ≥ 1 (β̃'_0 = 0)
    respaced_gaps[K] = (tau[1:], gap)
    print(f"{K:>5}{', '.join(str(int(tau_i)) for tau_i in tau[:3]) + ', ...':>22}{beta_respaced.max().item():>12.4f}"
          f"{gap[1].item():>19.3f}{gap.median().item():>19.4f}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 4))
for K, (tau_i, gap) in respaced_gaps.items():
    ax.loglog((tau_i + 1).numpy(), gap.numpy(), "-" if K == 1000 else ".-", label=f"K = {K} steps")
ax.set(xlabel="paper's t of the step, τ_i + 1 (log scale)", ylabel="log β′_i − log β̃′_i (log scale)",
       title="after respacing, β′ and β̃′ are much further apart at the same t")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# With $K = 25$ the gap is one to two orders of magnitude larger than with $K = 1000$ at the same noise
# level, and it stays large much further into the process: its median over the steps is 0.029 (a 3%
# difference) against 0.0009 for $K = 1000$. Only at the noisiest steps ($\bar\alpha \approx 0$) do $\beta'$
# and $\tilde\beta'$ still nearly coincide (the right end of the plot). Why the choice matters then: a big step from
# $\tau_i$ to $\tau_{i-1}$ puts much more weight on the predicted $\hat x_0$ (the posterior mean's
# coefficient of $x_0$ grows with the jump), so the model's uncertainty about $x_0$ becomes a large
# part of the right reverse variance. $\tilde\beta'$ assumes no uncertainty and $\beta'$ assumes the most;
# neither is right, and they now differ a lot. A learned $v$ can land in between. Improved DDPM (§4,
# Fig. 8) found that learned-variance models kept most of their sample quality with 50 to 100 steps,
# while fixed-variance models lost more. Note that $v$ was trained with the 1000-step endpoints and is
# simply reused with the respaced ones; whether that transfers is an empirical question, measured next.
#
# ### Exercise 2: how far apart are the fixed choices after respacing?
#
# Respace the linear $T = 1000$ schedule to $K = 25$ uniform steps. What is the ratio
# $\beta'_i / \tilde\beta'_i$ at the respaced step $i = 1$ (the step from $\tau_1$ down to $\tau_0 = 0$)?
# Compare it with $\beta_t/\tilde\beta_t$ of the full process at $t = \tau_1$. Check it with
# `ddpm_teach.exercises.nb08.check_respaced_ratio(your_answer)`.
#
# Try it in the next cell; a worked solution is in **Solutions** at the end of the notebook (hidden; click
# to show).

# %%
# Your answer: uncomment, fill in and run.
# ddpm_teach.exercises.nb08.check_respaced_ratio(...)

# %% [markdown]
# ## 8. Measured: learned against fixed variance at 25, 50 and 100 steps
#
# The comparison keeps everything but the variance fixed. The learned-variance model's $\hat\varepsilon$
# is sampled three ways, with the **same** starting noise and the same random draws at every step
# (one seeded generator per run):
#
# * **learned**: `variance_type="learned_range"`, eq. 15 with the respaced $\beta'$, $\tilde\beta'$;
# * **fixed_small**: $\sigma^2 = \tilde\beta'$, the model's $v$ channels ignored;
# * **fixed_large**: $\sigma^2 = \beta'$, likewise.
#
# As a reference, the shipped fixed-variance model `fashion_mnist_ddpm.pt` (same architecture with $C$
# outputs, trained with $L_\text{simple}$ alone on the same data, but for fewer steps, in 15 minutes against
# the learned-variance model's 20; the next cell prints both step counts) is sampled with fixed_small, the
# sampler's default, at the same step counts and with the same starting noise. To add its fixed_large run, add a line to `CONFIGS`: each adds about a quarter to the
# sampling time. Quality is measured with the classifier-FID of notebook 05: lower is better, and the
# real-versus-real floor (N real training images scored the same way) is about what a perfect sampler would
# score at the same N. The N this CPU budget
# allows is small, so every FID also gets a rough error bar: its spread when the cell's N samples are
# resampled with replacement (a bootstrap).

# %%
ddpm_teach.course.section("8. Learned against fixed variance")
# NBVAL_IGNORE_OUTPUT
ddpm_model, ddpm_schedule, ddpm_ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_ddpm.pt"))
torch.testing.assert_close(ddpm_schedule.betas, schedule.betas)
print(f"training steps of the shipped checkpoints: learned-variance model {lv_ckpt.get('step')}, "
      f"L_simple model {ddpm_ckpt.get('step')}")
with timed("loading the evaluator (classifier, test and train sets, test features)"):
    evaluator = Evaluator.load()


def bootstrap_fid_std(images: torch.Tensor, repeats: int = 20, seed: int = 7) -> float:
    """A rough error bar: the spread of classifier-FID over resamplings (with replacement) of the N images."""
    features = evaluator.features(images)                                   # (N, 128)
    generator = torch.Generator().manual_seed(seed)
    fids = []
    for _ in range(repeats):
        idx = torch.randint(0, len(features), (len(features),), generator=generator)
        fids.append(frechet_distance(*gaussian_stats(features[idx]), *evaluator.test_stats))
    return torch.tensor(fids).std().item()


CONFIGS = {                                    # name: (model, variance_type)
    "learned σ² (learned_range)": (model, "learned_range"),
    "σ² = β̃′ (fixed_small)": (model, "fixed_small"),
    "σ² = β′ (fixed_large)": (model, "fixed_large"),
    "L_simple model, σ² = β̃′ (reference)": (ddpm_model, "fixed_small"),
}
print(f"size={SIZE}: N = {N_EVAL} images per cell, steps {STEP_COUNTS}, {len(CONFIGS)} configurations")

# %%
# NBVAL_IGNORE_OUTPUT
samples, scores = {}, {}
with timed(f"sampling {len(CONFIGS)} × {len(STEP_COUNTS)} cells of {N_EVAL} images and scoring them"):
    for steps in STEP_COUNTS:
        for name, (net, variance_type) in CONFIGS.items():
            sampler = DDPMSampler(schedule, steps=steps, variance_type=variance_type)
            images = sample(net, sampler, N_EVAL, generator=torch.Generator().manual_seed(0), progress=False)
            samples[name, steps] = images
            scores[name, steps] = evaluator.score(images)
            scores[name, steps]["fid_spread"] = bootstrap_fid_std(images)

# %%
# NBVAL_IGNORE_OUTPUT
floor = scores[next(iter(scores))]["fid_floor"]
print(f"classifier-FID (lower is better) ± bootstrap spread, N = {N_EVAL} samples per cell; "
      f"real-vs-real floor at N = {N_EVAL}: {floor:.2f}\n")
print(f"{'DDPM steps:':<40}" + "".join(f"{steps:>14}" for steps in STEP_COUNTS))
for name in CONFIGS:
    print(f"{name:<40}" + "".join(f"{scores[name, steps]['fid']:>8.2f} ±{scores[name, steps]['fid_spread']:>4.1f}"
                                  for steps in STEP_COUNTS))
print("\nevery cell, as Evaluator.format_scores prints it:")
for (name, steps), cell in scores.items():
    print(f"  {steps:>3} steps, {name:<38} {Evaluator.format_scores(cell)}")

short = dict(zip(CONFIGS, ("learned", "fixed_small", "fixed_large", "reference")))
print("\ndifferences in classifier-FID, ± the larger bootstrap spread of the two cells "
      "(resolved: more than twice that):")
for steps in STEP_COUNTS:
    fid = {short[name]: scores[name, steps]["fid"] for name in CONFIGS}
    spread = {short[name]: scores[name, steps]["fid_spread"] for name in CONFIGS}
    pairs = [("learned", "fixed_small"), ("learned", "fixed_large"), ("reference", "learned"), ("reference", "fixed_small")]
    print(f"  {steps:>3} steps: " + ";  ".join(
        f"{a} − {b} {fid[a] - fid[b]:+.2f} ± {max(spread[a], spread[b]):.1f}"
        f"{'' if abs(fid[a] - fid[b]) > 2 * max(spread[a], spread[b]) else ' (not resolved)'}" for a, b in pairs))
    same_model = [fid[key] for key in ("learned", "fixed_small", "fixed_large")]
    print(f"             worst minus best of the three variances: {max(same_model) - min(same_model):.2f}; "
          f"best cell minus the floor: {min(fid.values()) - floor:+.2f}")

# %%
fig, ax = plt.subplots(figsize=(10, 4.2))
for (name, _), style in zip(CONFIGS.items(), ("o-", "s--", "^--", "d:")):
    ax.errorbar(STEP_COUNTS, [scores[name, steps]["fid"] for steps in STEP_COUNTS],
                yerr=[scores[name, steps]["fid_spread"] for steps in STEP_COUNTS], fmt=style, capsize=3, label=name)
ax.axhline(floor, color="gray", ls="-.", lw=1, label=f"real-vs-real floor (N = {N_EVAL})")
# a log y axis: fixed_large's FID is several times the others' at few steps and would squeeze them flat
ends = [(cell["fid"] - cell["fid_spread"], cell["fid"] + cell["fid_spread"]) for cell in scores.values()]
low = min([floor] + [cell["fid"] for cell in scores.values()] + [lo for lo, _ in ends if lo > 0])
high = max(hi for _, hi in ends)
ax.set(xscale="log", yscale="log", xticks=list(STEP_COUNTS), xticklabels=[str(s) for s in STEP_COUNTS],
       xlabel="DDPM sampling steps K (respaced)", ylabel="classifier-FID (lower is better, log scale)",
       title=f"learned vs fixed variance, N = {N_EVAL} samples per point (bars: bootstrap spread)")
ax.set_ylim(low / 1.15, high * 1.15)
ax.minorticks_off()
ax.set_yticks([y for y in (1, 1.5, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 100) if low / 1.15 <= y <= high * 1.15])
ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))     # plain numbers, not 10^x
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))             # beside the plot, clear of every point
fig.tight_layout()
plt.show()

# %% [markdown]
# The same starting noise, 25 steps, four ways (the first 16 samples of each cell above). Expect the
# reference grid, drawn by a different network, to show mostly the same garments in the same places as
# the learned-variance model's learned and fixed_small grids. That is no coincidence: both checkpoints
# were trained with the same seed (`train_config["seed"]`, 0, on the same data and batch size), so they
# started from the same initial weights (the output layer starts at zero, so the extra $v$ channels
# change nothing at the start) and saw the same batches in the same order, with the same $t$ and
# $\varepsilon$ draws. What differs is the hybrid loss's small $L_\text{vlb}$ term, the learning-rate
# schedule and the length of training. Each trained network is, in effect, a deterministic map from
# the sampler's noise to an image, learned from the same data from the same start; and every grid
# here gets the same noise (one generator seeded 0 per run). So the two maps mostly agree, and they
# differ in details and in a few of the samples.

# %%
steps = 25 if 25 in STEP_COUNTS else min(STEP_COUNTS)
fig, axes = plt.subplots(1, len(CONFIGS), figsize=(3.2 * len(CONFIGS), 3.6))
for ax, name in zip(axes, CONFIGS):
    show_images(samples[name, steps][:16], nrow=4, ax=ax)
    ax.set_title(f"{name}\n{steps} steps", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for, in the table, the differences printed under it, the plot and the grids:
#
# * **Same $\hat\varepsilon$, different variance.** The three left grids share every random number; only
#   $\sigma^2$ differs. Too much variance at the last, big steps leaves visible grain that the next steps
#   can no longer remove: look for speckle on the garments and on the background in the fixed_large grid at
#   25 steps, and for its score in the table. Too little gives smoother, sometimes washed-out images. Expect
#   the learned and fixed_small grids to be almost the same pictures; look for a little more fine texture
#   in one and a shade more smoothness in the other.
# * **Where the learned variance lands.** Improved DDPM found that a learned variance keeps sample quality
#   as $K$ shrinks, where a fixed one can lose it. Check both halves of that in the printed differences.
#   Does the learned variance avoid fixed_large's loss (learned − fixed_large clearly negative, and
#   resolved)? Does it also beat fixed_small (learned − fixed_small negative)? A gap smaller than about
#   twice the bootstrap spread of its cells is not resolved at this N, whichever way it points; and a gap
#   that shrinks as $K$ falls is the direction the paper's result points to, but at a small N it is no
#   evidence on its own.
# * **Trends with $K$.** Expect the three variances of the same model to move closer together as $K$ grows
#   (with 1000 steps the two fixed ones are nearly the same, section 1): the printout gives the worst minus
#   the best at each $K$, and the table shows which row makes most of it. That spread at few steps is what
#   learning the variance is meant to remove: look at how close the learned row stays to the best fixed
#   choice, without anyone having to know which one that is, and at how each row changes from 25 to 50 to
#   100 steps.
# * **Likelihood is not FID.** The learned variance is trained to minimise the bound (section 6: the lowest
#   $L_t$ summed over the probed $t \le 20$), not to please a feature-based score, and a variance a little
#   below the bound's optimum gives smoother samples. So fixed_small matching or even nominally beating the
#   learned variance would not be a bug. What learning the variance buys is not having to guess: no grain
#   from a too-large variance at few steps, and the best likelihood.
# * **The reference** shows the plain $L_\text{simple}$ model with the same sampler. Read its printed
#   differences to the learned-variance model's learned and fixed_small rows, and which of them are resolved.
#   Even a resolved gap could not be credited to the hybrid loss alone: the two checkpoints trained for
#   different numbers of steps (both printed above), and the $v$ channels take a share of a small
#   network. Improved DDPM's far larger models reached competitive likelihoods "while maintaining high
#   sample quality".
# * **Honesty about noise.** The ± in the table and the bars in the plot are bootstrap spreads over the N
#   samples of each cell: differences smaller than about twice that are not resolved at this N (the
#   printout marks them). The floor, printed with the table, shows how much of every FID is small-sample
#   bias: the printout gives how far the best cell at each $K$ sits above it. Both shipped models were
#   trained briefly on a CPU (15 and 20 minutes), and the paper's models were far larger and trained far
#   longer: where these numbers disagree with the paper, training length and N are the first suspects. For
#   tighter numbers raise `N_EVAL` (the cost is linear in it; a GPU makes N = 1000 cheap).
#
# ## Summary
#
# * DDPM's two fixed reverse variances are the ends of a range: $\tilde\beta_t$ (exact $x_0$) and
#   $\beta_t$ (no knowledge of $x_0$). For $T = 1000$ they differ only near $t = 0$, where the
#   bound's per-step terms are largest.
# * Improved DDPM lets the UNet output $2C$ channels, $\hat\varepsilon$ and $v$, and sets
#   $\log\sigma^2 = v\log\beta_t + (1-v)\log\tilde\beta_t$ with $v = (v_\text{raw}+1)/2$ (eq. 15;
#   `ddpm_teach.losses.learned_log_variance` takes the raw output `v_raw`).
# * The variance is trained by the bound's terms: Gaussian KLs (`normal_kl`) for $t > 0$ and the
#   discretised decoder NLL (`discretized_gaussian_log_likelihood`) at $t = 0$, combined in `vlb_terms`.
#   For a given mean the best variance is $\tilde\beta_t$ plus the mean's squared error.
# * $L_\text{hybrid} = L_\text{simple} + \lambda L_\text{vlb}$ with $\lambda = 0.001$ (eq. 16); the mean is
#   detached inside $L_\text{vlb}$, so the ε channels get exactly the DDPM gradient (checked with autograd).
# * The shipped model's $v$ is trained where it matters (small $t$: it follows the oracle (the largest gap is printed in section 6) and gives
#   the lowest $L_t$ of the three variances) and arbitrary where it does not (large $t$, where
#   $\beta_t \approx \tilde\beta_t$).
# * Respacing to $K$ steps (`DDPMSampler(schedule, steps=K)`, Improved DDPM §4) defines $\beta'$ and
#   $\tilde\beta'$ that are much further apart than $\beta$ and $\tilde\beta$ (most at small and middle $t$); that is where a learned variance should help, and
#   section 8 measured it on this model with classifier-FID, N and the floor printed, and printed which
#   differences between the variances are resolved at that N.
#
# **Further reading.** Improved DDPM §3.1 (learned variances), §3.3 (importance-sampled $L_\text{vlb}$),
# §4 (fast sampling) and their code, [openai/improved-diffusion](https://github.com/openai/improved-diffusion)
# (`gaussian_diffusion.py`: `p_mean_variance`, `_vb_terms_bpd`, `respace.py`). Bao et al. 2022,
# *Analytic-DPM* ([arXiv:2201.06503](https://arxiv.org/abs/2201.06503)), derive the optimal reverse
# variance in closed form from the score, with no extra training.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of sections 3 and 7. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# Eq. 15 with v = 0.3 (the paper's v, so no (out + 1)/2 here).
v = 0.3
answer_1 = math.exp(v * schedule.betas[1].log().item() + (1 - v) * schedule.posterior_variance[1].log().item())
ddpm_teach.exercises.nb08.check_learned_variance(answer_1)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# β'_1/β̃'_1 = (1 − ᾱ_{τ_1}) / (1 − ᾱ_{τ_0}), from the sampler's respaced process.
respaced = DDPMSampler(schedule, steps=25).respaced
answer_2 = (respaced.betas[1] / respaced.posterior_variance[1]).item()
ddpm_teach.exercises.nb08.check_respaced_ratio(answer_2)

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
# ← [07 · Classifier-free guidance](07_guidance.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [09 · Fast samplers →](09_fast_samplers.ipynb)
