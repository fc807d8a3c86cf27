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
# # 09 · Fast samplers: the probability-flow ODE, Heun and DPM-Solver++
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/09_fast_samplers.ipynb)
#
# ← [08 · Learned variance](08_learned_variance.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [10 · Latent diffusion →](10_latent_diffusion.ipynb)
#
# Notebook 06 made sampling deterministic and shortened it from 1000 model calls to 10-100 with
# DDIM, and its measured table showed the price: at few steps the images get worse. This notebook
# looks at deterministic DDIM from another side. It is **Euler's method**, the simplest ODE solver
# there is, applied to an ordinary differential equation whose solution carries noise to data: the
# **probability-flow ODE** (Song et al. 2021, *Score-Based Generative Modeling through Stochastic
# Differential Equations*, [arXiv:2011.13456](https://arxiv.org/abs/2011.13456)). Once sampling is
# "solve an ODE", a century of numerical analysis applies: a **second-order** solver makes a much
# smaller error per step, so, once the steps are small enough (§3, §7), it needs far fewer network
# calls for the same accuracy. We take two:
# **Heun's method** as Karras et al. 2022 use it (*Elucidating the Design Space of Diffusion-Based
# Generative Models*, "EDM", [arXiv:2206.00364](https://arxiv.org/abs/2206.00364)), and
# **DPM-Solver++(2M)** (Lu et al. 2022b, [arXiv:2211.01095](https://arxiv.org/abs/2211.01095)),
# the default of many image generators. Nothing is retrained: the same shipped model, new samplers.
#
# **Prerequisites.** Notebooks 05-06 (the shipped model, classifier-FID, DDIM); notebook 07 for the
# guided rows of §8's table. This notebook follows notebook 08.
#
# **Learning goals.** By the end you can
# 1. write the probability-flow ODE in the variables $\tilde x = x_t/\sqrt{\bar\alpha_t}$ and
#    $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$, where it reads
#    $d\tilde x/d\sigma = \hat\varepsilon$ (the network's noise prediction), and say what $\sigma$ is for the course's schedule;
# 2. show that one deterministic DDIM step is one Euler step of that ODE, and check it step for
#    step against `ddpm_teach.solvers.EulerSampler`;
# 3. measure the **order** of a solver on a problem whose exact answer is known (Gaussian data):
#    error $\propto$ (step size)$^1$ for Euler, $\propto$ (step size)$^2$ for Heun and DPM-Solver++(2M);
# 4. count **network function evaluations (NFE)**, the real cost: Heun makes two per step, a
#    multistep method like DPM-Solver++(2M) one;
# 5. explain DPM-Solver++'s exponential integrator: solve the linear part of the ODE exactly and
#    approximate only the denoiser, and why its first-order version *is* DDIM;
# 6. choose where the steps go (Karras et al.'s $\sigma$ spacing, $\rho = 7$);
# 7. read a **measured** table of classifier-FID against NFE for DDIM, Euler, Heun and
#    DPM-Solver++(2M) on the shipped model, with $N$ and the real-vs-real floor, and pick a sampler.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX: not measured
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-02, 12-07): 66-78 s (four runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 13-14 s (AMD, 2026-12-07).
#   Slower without AVX-512, fewer cores or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - §8's FID table is read from `benchmarks/results/quality_n1000.json`, not computed here (its benchmark takes about 40 min on the AMD).
#
# **Size knob:** `DDPM_TEACH_SIZE` (`full` by default, `ci` under pytest) changes only how many
# images §7 draws, which NFE it tries and how long its reference solve is. The maths cells (the
# schedule, the Gaussian convergence study, the step checks, the spacings, the exercises) print the
# same at both sizes and are checked by `pytest --nbval`; cells whose output depends on the size,
# the trained weights or the benchmark file are marked `# NBVAL_IGNORE_OUTPUT`.

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
# ## Imports, the size knob and the shipped model

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports and the shipped model")      # the last cell prints the time per section

import json
import math
import re
from types import SimpleNamespace

import matplotlib.pyplot as plt
import torch

import ddpm_teach.exercises.nb09
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, timed
from ddpm_teach.data import load_dataset
from ddpm_teach.devices import pick_device
from ddpm_teach.forward import q_sample
from ddpm_teach.plotting import show_images, to_unit_range
from ddpm_teach.samplers import DDIMSampler, sample
from ddpm_teach.solvers import DPMSolverPP2MSampler, EulerSampler, HeunSampler, karras_timesteps

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" or "ci"
DEVICE = pick_device("auto")               # a GPU if there is one (e.g. in Colab), else the CPU
N_SHOW = by_size(full=8, ci=4)             # images per row in the figures
N_SAMPLES = by_size(full=64, ci=4)         # images per sampler in §7 (all from the same x_T)
NFE_BUDGETS = by_size(full=(5, 10, 20), ci=(10,))     # NFE budgets tried in §7
REFERENCE_STEPS = by_size(full=50, ci=8)   # Heun steps (2·steps − 1 NFE) of §7's reference solution


def generator(seed: int) -> torch.Generator:
    """A fresh CPU generator: the only source of randomness of each draw (the package draws on the
    generator's device and moves the numbers, so they are the same on any DEVICE)."""
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def predict_eps(x_t: torch.Tensor, t: int) -> torch.Tensor:
    """The shipped model's ε̂(x_t, t) for a batch x_t [B, 1, 28, 28] at one timestep t, on the CPU.
    (``model`` is loaded in the next cell; this function is only called after it.)"""
    t_batch = torch.full((len(x_t),), t, dtype=torch.long, device=DEVICE)
    return model(x_t.to(DEVICE), t_batch).cpu()


# %%
model, schedule, ckpt = load_diffusion_model(checkpoint_path("fashion_mnist_ddpm.pt"), device=DEVICE)
print(f"UNet: {sum(p.numel() for p in model.parameters()):,} parameters, "
      f"{'class-conditional' if model.config.num_classes else 'unconditional'}")
print(schedule)

test_data = load_dataset("fashion_mnist", train=False)
x0_real, _ = test_data.batch(list(range(N_SHOW)))       # (N_SHOW, 1, 28, 28) in [-1, 1]

# %% [markdown]
# ## 1. From DDIM to the probability-flow ODE
#
# **The ODE.** Song et al. 2021 write the forward process as a stochastic differential equation,
# $dx = f(x, t)\,dt + g(t)\,dw$; DDPM's is the "variance-preserving" one,
# $dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dw$ (their eq. 11). Their central observation
# (§4.3) is that a **deterministic** equation moves a whole population of samples through exactly
# the same marginals $p_t(x)$:
#
# $$dx = \Big[f(x, t) - \tfrac12 g(t)^2\,\nabla_x \log p_t(x)\Big]\,dt
# \qquad \text{(Song et al. 2021, eq. 13, the probability-flow ODE)}.$$
#
# Run backwards from $x_T \sim \mathcal N(0, I)$ it ends at samples of the data. The only unknown is
# the score $\nabla_x \log p_t(x_t)$, and the trained network gives it:
# $\nabla_x \log p_t(x_t) \approx -\varepsilon_\theta(x_t, t)/\sqrt{1-\bar\alpha_t}$.
#
# **Better variables.** In $x_t$ the ODE looks complicated. DDIM §4.3 and Karras et al. §2 both
# change variables to
#
# $$\tilde x = \frac{x_t}{\sqrt{\bar\alpha_t}}, \qquad
# \sigma_t = \sqrt{\frac{1-\bar\alpha_t}{\bar\alpha_t}}, \qquad\text{so that}\qquad
# \tilde x = x_0 + \sigma_t\,\varepsilon \quad\text{and}\quad \bar\alpha_t = \frac{1}{1+\sigma_t^2}.$$
#
# $\tilde x$ is the noisy image *without the shrinking*: data plus noise of standard deviation
# $\sigma$ (Karras et al.'s "variance exploding" form; their Table 1 lists DDPM's as $s(t) = \sqrt{\bar\alpha}$,
# $\sigma(t)$ as above). In these variables the ODE becomes
#
# $$\frac{d\tilde x}{d\sigma} = \varepsilon_\theta\Big(\frac{\tilde x}{\sqrt{1+\sigma^2}},\ t(\sigma)\Big)
# \qquad \text{(DDIM eq. 14)}, \qquad\text{or, with the denoiser } D = \hat x_0 = \tilde x - \sigma\hat\varepsilon,\qquad
# \frac{d\tilde x}{d\sigma} = \frac{\tilde x - D(\tilde x; \sigma)}{\sigma}
# \qquad \text{(Karras et al. eq. 1 with eq. 3)}.$$
#
# Here $t(\sigma)$ is the timestep with that $\sigma$ (the inverse of $\sigma_t$, which falls monotonically
# in $t$), and $\hat\varepsilon = \varepsilon_\theta(x_t, t)$ is the network's noise prediction.
#
# Where it comes from, in three lines: with $\bar\alpha(t) = e^{-\int_0^t \beta}$ (the continuous
# $\beta(t)$ is the limit of the discrete product $\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)$ for many small steps),
# $\frac{d}{dt}\tilde x = \frac{1}{\sqrt{\bar\alpha}}\frac{dx}{dt} + \frac{\beta}{2}\tilde x
# = \frac{\beta}{2\sqrt{\bar\alpha}}\cdot\frac{\varepsilon_\theta}{\sqrt{1-\bar\alpha}}$ (the drift
# $-\tfrac12\beta x$ cancels), and $\frac{d\sigma}{dt} = \frac{\beta}{2\bar\alpha\sigma}
# = \frac{\beta}{2\sqrt{\bar\alpha}\sqrt{1-\bar\alpha}}$; the ratio is $\varepsilon_\theta$. The
# network's output **is the slope** of the path $\tilde x(\sigma)$. Sampling integrates it from
# $\sigma_{\max}$ down to $\sigma = 0$, where $\tilde x = x_0$.
#
# Here is $\sigma_t$ for the course's linear schedule ($T = 1000$), and a check that
# $x_t/\sqrt{\bar\alpha_t} = x_0 + \sigma_t\varepsilon$ for an $x_t$ made by `q_sample` (eq. 4 of DDPM).

# %%
ddpm_teach.course.section("1. The probability-flow ODE")
sigmas = ((1 - schedule.alphas_cumprod) / schedule.alphas_cumprod).sqrt()     # σ_t, float64 [T]
for t in (0, 100, 250, 500, 750, 999):
    print(f"t = {t:>3}: ᾱ_t = {float(schedule.alphas_cumprod[t]):.6f}   σ_t = {float(sigmas[t]):9.4f}   "
          f"λ_t = −log σ_t = {-math.log(float(sigmas[t])):7.3f}")
print(f"σ = 1 (noise as strong as the signal) at t ≈ {int((sigmas - 1).abs().argmin())}")

t = 600
eps = torch.randn(x0_real.shape, generator=generator(1))
x_t = q_sample(schedule, x0_real, t, eps)                                   # √ᾱ_t x_0 + √(1−ᾱ_t) ε
x_tilde = x_t / schedule.alphas_cumprod[t].sqrt().float()
torch.testing.assert_close(x_tilde, x0_real + float(sigmas[t]) * eps)
print(f"x_t/√ᾱ_t equals x_0 + σ_t·ε at t = {t} (assert_close passed)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot(range(schedule.T), sigmas.numpy())
axes[0].set_yscale("log")
axes[0].axhline(1.0, color="k", linestyle=":", linewidth=1)
axes[0].set_ylabel("σ_t = √((1 − ᾱ_t)/ᾱ_t)")
axes[0].set_title("the noise level σ of the linear schedule (T = 1000)")
axes[1].plot(range(schedule.T), (-sigmas.log()).numpy(), color="C1")
axes[1].axhline(0.0, color="k", linestyle=":", linewidth=1)
axes[1].set_ylabel("λ_t = −log σ_t = ½ log SNR(t)")
axes[1].set_title("λ: the variable DPM-Solver++ steps in (§5)")
for ax in axes:
    ax.set_xlabel("t (0-based; sampling runs right to left)")
    ax.grid(True, alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# $\sigma$ spans four orders of magnitude: from about 0.01 at $t = 0$ to about 157 at $t = 999$.
# Most of the $t$ axis is spent at $\sigma > 1$, where the image is buried in noise. Where along
# that range the solver puts its steps will matter (§6).
#
# ## 2. Euler's method is DDIM
#
# Euler's method follows the slope at the current point for the whole step. From $\sigma_i$ to
# $\sigma_{i+1} < \sigma_i$:
#
# $$\tilde x_{i+1} = \tilde x_i + (\sigma_{i+1} - \sigma_i)\,\hat\varepsilon_i,
# \qquad \hat\varepsilon_i = \frac{\tilde x_i - D(\tilde x_i; \sigma_i)}{\sigma_i}
# \qquad \text{(Karras et al. Algorithm 1, lines 4-5)}.$$
#
# Now DDIM with $\eta = 0$ (DDIM eq. 12, as in notebook 06): $x_s = \sqrt{\bar\alpha_s}\,\hat x_0 +
# \sqrt{1-\bar\alpha_s}\,\hat\varepsilon$. Divide by $\sqrt{\bar\alpha_s}$: $\tilde x_s = \hat x_0 +
# \sigma_s\hat\varepsilon$. And $\tilde x_t = \hat x_0 + \sigma_t\hat\varepsilon$ is DDIM eq. 9 (as in notebook 06) rearranged.
# Subtract the two: $\tilde x_s = \tilde x_t + (\sigma_s - \sigma_t)\,\hat\varepsilon$. That is the
# Euler step, and DDIM writes it out as its eq. 13. **Deterministic DDIM is Euler's method on the
# probability-flow ODE**, on whatever timesteps it is given.
#
# The package has both. `EulerSampler` works in $\tilde x$ and $\sigma$ like Karras et al.'s
# algorithm; `DDIMSampler` works in $x_t$ and $\bar\alpha$ like the DDIM paper. Drive both with the
# shipped model's $\hat\varepsilon$ on the same 10 uniform timesteps, step by step from the same
# $x_t$: they must agree to float32 rounding, $\hat x_0$ clipping included (both clip $\hat x_0$ to
# $[-1, 1]$ and take the slope through the clipped value).

# %%
ddpm_teach.course.section("2. Euler is DDIM")
ddim_10 = DDIMSampler(schedule, steps=10, eta=0.0)
euler_10 = EulerSampler(schedule, steps=10)                 # spacing="uniform", as DDIM's default
assert torch.equal(ddim_10.timesteps, euler_10.timesteps)
print("timesteps:", euler_10.timesteps.tolist())

x = torch.randn(N_SHOW, 1, 28, 28, generator=generator(2))  # x_T, (N_SHOW, 1, 28, 28)
euler_10.begin()                                             # what sample() does before its loop
# (DDIMSampler keeps no state between steps, so it needs no begin(); Euler and the other ODE solvers do)
for t in ddim_10.timesteps.tolist():
    eps_model = predict_eps(x, t)
    by_ddim = ddim_10.step(eps_model, t, x)
    by_euler = euler_10.step(eps_model, t, x)
    torch.testing.assert_close(by_euler.prev_sample, by_ddim.prev_sample)
    torch.testing.assert_close(by_euler.pred_x0, by_ddim.pred_x0)
    x = by_ddim.prev_sample
print(f"EulerSampler equals DDIMSampler(η = 0) at every one of the {len(ddim_10)} steps "
      "(assert_close on prev_sample and pred_x0)")

# %% [markdown]
# So everything notebook 06 measured about DDIM ($\eta = 0$) is a measurement of Euler's method.
# Euler is a **first-order** method: halve the step size and the error at the end halves. That is
# the cost notebook 06's table showed at few steps, and the reason to look for a better solver.
#
# ## 3. Why a second-order step helps: a case with an exact answer
#
# To *see* the error of a solver we need the exact solution, which a trained network never gives.
# One data distribution does: **Gaussian data** $x_0 \sim \mathcal N(\mu, s^2)$ in every pixel. Then
# $\tilde x = x_0 + \sigma\varepsilon \sim \mathcal N(\mu, s_{\text{data}}^2 + \sigma^2)$, the best denoiser is the
# posterior mean, and everything is in closed form:
#
# $$D(\tilde x; \sigma) = \mu + \frac{s_{\text{data}}^2}{s_{\text{data}}^2+\sigma^2}(\tilde x - \mu),\qquad
# \varepsilon^*(\tilde x, \sigma) = \frac{\tilde x - D}{\sigma} = \frac{\sigma\,(\tilde x - \mu)}{s_{\text{data}}^2+\sigma^2},\qquad
# \tilde x(\sigma) = \mu + (\tilde x_a - \mu)\,\frac{\sqrt{s_{\text{data}}^2+\sigma^2}}{\sqrt{s_{\text{data}}^2+\sigma_a^2}},$$
#
# the last being the exact solution of $d\tilde x/d\sigma = \varepsilon^*$ from $\tilde x_a$ at
# $\sigma_a$ (differentiate it to check). The path is curved where $\sigma$ is comparable to $s_{\text{data}}$, and
# a straight Euler step cuts the corner.
#
# **Local error.** Take one step of size $\Delta\sigma$ from a point on the exact path and compare
# with the exact path at its end. Euler's method is exact for straight lines, so its error comes from
# the curvature: about $\tfrac12 \Delta\sigma^2\,\tilde x''$. **Heun's method** (the trapezoidal rule, Karras et
# al. Algorithm 1 lines 6-8) takes the Euler step as a trial, evaluates the slope again at its end,
# and redoes the step with the average of the two slopes:
#
# $$\tilde x' = \tilde x_i + \Delta\sigma\,d_i,\qquad d' = \varepsilon^*(\tilde x', \sigma_{i+1}),\qquad
# \tilde x_{i+1} = \tilde x_i + \Delta\sigma\,\tfrac12(d_i + d'),\qquad \Delta\sigma = \sigma_{i+1} - \sigma_i.$$
#
# The average slope cancels the curvature term, leaving an error of order $\Delta\sigma^3$. The cell below
# does one step of each, written out in continuous $\sigma$, for shrinking $|\Delta\sigma|$ from $\sigma = 1$
# ($\mu = 0.3$, $s_{\text{data}} = 0.5$, one pixel $\tilde x = 2$), and fits the slope on a log-log scale.

# %%
ddpm_teach.course.section("3. Order on Gaussian data")
MU, S_DATA = 0.3, 0.5                                        # Gaussian data N(μ, s_data²) in every pixel


def exact_eps(x_tilde, sigma):
    """ε*(x̃, σ) = σ(x̃ − μ)/(s_data² + σ²): the exact ε for Gaussian data, the slope dx̃/dσ."""
    return sigma * (x_tilde - MU) / (S_DATA**2 + sigma**2)


def exact_path(x_tilde_a, sigma_a, sigma):
    """The exact probability-flow ODE solution at σ, from x̃_a at σ_a."""
    return MU + (x_tilde_a - MU) * math.sqrt(S_DATA**2 + sigma**2) / math.sqrt(S_DATA**2 + sigma_a**2)


sigma_a, x_a = 1.0, 2.0
step_sizes = [0.4 / 2**k for k in range(7)]                 # |Δσ| = σ_i − σ_{i+1}: 0.4 … 0.00625
local = {"Euler": [], "Heun": []}
for step_size in step_sizes:
    sigma_b = sigma_a - step_size
    d = exact_eps(x_a, sigma_a)
    x_euler = x_a + (sigma_b - sigma_a) * d                                          # Alg. 1 line 5
    x_heun = x_a + (sigma_b - sigma_a) * 0.5 * (d + exact_eps(x_euler, sigma_b))     # lines 7-8
    local["Euler"].append(abs(x_euler - exact_path(x_a, sigma_a, sigma_b)))
    local["Heun"].append(abs(x_heun - exact_path(x_a, sigma_a, sigma_b)))
for name, errors in local.items():
    slope = math.log(errors[-2] / errors[-1]) / math.log(2)
    print(f"{name:<6} one-step error at |Δσ| = {step_sizes[0]:.3f}: {errors[0]:.2e}, at |Δσ| = {step_sizes[-1]:.5f}: "
          f"{errors[-1]:.2e};  log-log slope {slope:.2f}")

# %% [markdown]
# Local errors of order $\Delta\sigma^2$ and $\Delta\sigma^3$ add up over the $\sim 1/|\Delta\sigma|$ steps of a
# whole trajectory to **global** errors of order $\Delta\sigma$ (first order) and $\Delta\sigma^2$ (second order). That is the claim to test
# on the package's samplers, on whole trajectories from $\sigma_{\max} = \sigma_{999}$ down.
#
# The samplers call a network, so give them one: a tiny `torch.nn.Module` whose forward returns the
# exact $\varepsilon^*$ at $(x_t, t)$. `sample()` needs a `config` (channels, size, no classes, no
# learned variance) to know what $x_T$ looks like. Everything is float64, so that rounding does not
# hide the solver error. The samplers run with `clip_x0=False` here: clipping is a fix for imperfect
# networks, and this one is exact.

# %%
class ExactGaussianEps(torch.nn.Module):
    """ε*(x_t, t) for Gaussian data N(μ, s_data²): the "network" of a model that has learnt perfectly."""

    def __init__(self, schedule, image_size: int = 4):
        super().__init__()
        self.schedule = schedule
        self.config = SimpleNamespace(in_channels=1, image_size=image_size, num_classes=None, learn_sigma=False)

    def forward(self, x_t, t, labels=None):                              # x_t (B, 1, H, W), t (B,)
        alpha_bar = self.schedule.alphas_cumprod[t].to(x_t).view(-1, 1, 1, 1)
        sigma = ((1 - alpha_bar) / alpha_bar).sqrt()
        return exact_eps(x_t / alpha_bar.sqrt(), sigma)                  # ε* at x̃ = x_t/√ᾱ_t


gaussian_model = ExactGaussianEps(schedule)
x_T_gauss = torch.randn(64, 1, 4, 4, generator=generator(3), dtype=torch.float64)   # (64, 1, 4, 4)
sigma_max, sigma_min = float(sigmas[-1]), float(sigmas[0])
exact_at_sigma_min = exact_path(x_T_gauss * math.sqrt(1 + sigma_max**2), sigma_max, sigma_min)


def solve_gaussian(sampler) -> float:
    """RMS error of the sampler's x̃ at σ_min = σ_0 (t = 0) against the exact ODE solution. (The last step,
    σ_0 ≈ 0.01 → 0, is the same short step at every step count, so the comparison stops before it.)"""
    _, trajectory = sample(gaussian_model, sampler, x_T=x_T_gauss, device="cpu", progress=False,
                           return_trajectory=True)
    x_tilde_end = trajectory.x[-2] * math.sqrt(1 + sigma_min**2)         # the input to the last call
    return float((x_tilde_end - exact_at_sigma_min).pow(2).mean().sqrt())


SOLVER_CLASSES = {"Euler": EulerSampler, "Heun": HeunSampler, "DPM-Solver++(2M)": DPMSolverPP2MSampler}
STEP_COUNTS = (4, 8, 16, 32, 64, 128, 256)
convergence = {name: [] for name in [*SOLVER_CLASSES, "DDIM (η = 0)"]}
for steps in STEP_COUNTS:
    for name, cls in SOLVER_CLASSES.items():
        sampler = cls(schedule, steps=steps, clip_x0=False)              # uniform timesteps
        convergence[name].append((sampler.nfe, solve_gaussian(sampler)))
    ddim = DDIMSampler(schedule, steps=steps, clip_x0=False)
    convergence["DDIM (η = 0)"].append((ddim.nfe, solve_gaussian(ddim)))
KARRAS_STEP_COUNTS = (4, 8, 16, 32, 64)              # more Karras steps than 64 repeat integer timesteps (T = 1000)
karras_convergence = {name: [] for name in ("Euler", "DPM-Solver++(2M)")}
for steps in KARRAS_STEP_COUNTS:
    for name in karras_convergence:
        sampler = SOLVER_CLASSES[name](schedule, steps=steps, spacing="karras", clip_x0=False)
        karras_convergence[name].append((sampler.nfe, solve_gaussian(sampler)))

print(f"{'steps':>6}" + "".join(f"{name:>22}" for name in convergence) + "   (NFE, RMS error at σ_min)")
for i, steps in enumerate(STEP_COUNTS):
    print(f"{steps:>6}" + "".join(f"{f'{nfe:>4} {error:.2e}':>22}" for nfe, error in (v[i] for v in convergence.values())))
for name, values in convergence.items():
    (nfe_a, error_a), (nfe_b, error_b) = values[-2], values[-1]
    print(f"{name:<18} order from the last halving of the step: "
          f"{math.log(error_a / error_b) / math.log(nfe_b / nfe_a):.2f}")
gap = max(abs(a[1] - b[1]) for a, b in zip(convergence["Euler"], convergence["DDIM (η = 0)"]))
print(f"DDIM's and Euler's errors agree to within 1e-12 at every step count: {gap < 1e-12}")
print(f"\nKarras spacing (ρ = 7):\n{'steps':>6}" + "".join(f"{name:>22}" for name in karras_convergence))
for i, steps in enumerate(KARRAS_STEP_COUNTS):
    print(f"{steps:>6}" + "".join(f"{f'{nfe:>4} {error:.2e}':>22}" for nfe, error in (v[i] for v in karras_convergence.values())))
uniform_16 = DPMSolverPP2MSampler(schedule, steps=16)
strides_16 = (uniform_16.sigmas[:-2] / uniform_16.sigmas[1:-1]).log()    # h_i = λ_{i+1} − λ_i, [15]
r_last = float(strides_16[-2] / strides_16[-1])                         # r = h_{i−1}/h_i of the last 2M step
print(f"\nuniform, 16 steps: the last two strides in λ are {float(strides_16[-2]):.2f} and {float(strides_16[-1]):.2f}, "
      f"so r = {r_last:.2f} and D_i gets the weight 1 + 1/(2r) = {1 + 1 / (2 * r_last):.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11.5, 4))
for name, errors in local.items():
    axes[0].loglog(step_sizes, errors, "o-", label=name)
axes[0].loglog(step_sizes, [local["Euler"][-1] * (d / step_sizes[-1]) ** 2 for d in step_sizes], "k:",
               linewidth=1, label="slope 2")
axes[0].loglog(step_sizes, [local["Heun"][-1] * (d / step_sizes[-1]) ** 3 for d in step_sizes], "k--",
               linewidth=1, label="slope 3")
axes[0].set_xlabel("step size |Δσ|")
axes[0].set_ylabel("|error after one step|")
axes[0].set_title("local error: one step from σ = 1")

styles = {"Euler": "o-", "Heun": "s-", "DPM-Solver++(2M)": "^-", "DDIM (η = 0)": "x"}
styles_color = {"Euler": "C0", "Heun": "C1", "DPM-Solver++(2M)": "C2", "DDIM (η = 0)": "C3"}
for name, values in convergence.items():
    axes[1].loglog([v[0] for v in values], [v[1] for v in values], styles[name], color=styles_color[name],
                   label=name + ("" if name.startswith("DDIM") else ", uniform t"), markersize=8 if name.startswith("DDIM") else 5)
for name, style in (("Euler", "o--"), ("DPM-Solver++(2M)", "^--")):
    axes[1].loglog([v[0] for v in karras_convergence[name]], [v[1] for v in karras_convergence[name]], style,
                   color=styles_color[name], markerfacecolor="none", label=f"{name}, Karras σ")
nfe_ref = [v[0] for v in convergence["Heun"]]
axes[1].loglog(nfe_ref, [convergence["Euler"][-1][1] * convergence["Euler"][-1][0] / n for n in nfe_ref], "k:",
               linewidth=1, label="slope −1")
axes[1].loglog(nfe_ref, [convergence["Heun"][-1][1] * (convergence["Heun"][-1][0] / n) ** 2 for n in nfe_ref],
               "k--", linewidth=1, label="slope −2")
axes[1].set_xlabel("network evaluations (NFE)")
axes[1].set_ylabel("RMS error at σ_min")
axes[1].set_title("global error: whole trajectories, package samplers")
axes[1].legend(fontsize=7, ncol=2)
axes[0].legend(fontsize=8)
for ax in axes:
    ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to read off the two panels:
#
# * **Left:** one step, shrinking $|\Delta\sigma|$: the Euler error falls along the slope-2 line and Heun's along
#   the slope-3 line (the printout gives the fitted slopes).
# * **Right:** whole trajectories through the package's samplers. Euler's error halves when the NFE
#   doubles (order 1), Heun's and DPM-Solver++(2M)'s fall four times (order 2) once the steps are
#   small enough; the printed orders come from the last doubling. DDIM's crosses sit on Euler's line:
#   the same method, to rounding. On this problem Euler's Karras curve (dashed, open circles) nearly
#   coincides with its uniform one too, so Euler's uniform and Karras curves and DDIM's crosses are
#   almost one line: for a first-order method the spacing changes little here.
# * At the same NFE, Heun pays two evaluations per step, so at a small budget it takes half as many
#   steps, and its first points can lie *above* Euler's. DPM-Solver++(2M) gets its second order
#   for one evaluation per step by reusing the previous one (§5).
# * **Why DPM-Solver++(2M) wanders on uniform timesteps** (its solid curve, nearly flat from 8 to 16
#   steps and no better than Euler's from 8 to 32 steps): uniform timesteps end with a short stride in $\lambda = -\log\sigma$
#   followed by a long last one to $\sigma_{\min}$ (§6 shows it at 10 steps). The multistep formula of §5
#   extrapolates $D$ with the ratio $r = h_{i-1}/h_i$ of the two strides; the last printed line gives
#   $r$ at 16 steps and the weight $1 + 1/(2r)$ it puts on the newest $D$, a long extrapolation over
#   the very step where the image forms. Only with many steps does that last stride become short.
#   On **Karras spacing** (dashed, open markers) the strides grow steadily, $r$ stays near 1, and
#   DPM-Solver++(2M) lies below Euler on the same spacing at every step count in the printout; that
#   is the spacing §7 and §8 use. Compare the two dashed curves, then each dashed curve with its solid one.
#   One thing the strides do not explain: on Karras spacing DPM-Solver++(2M) is not monotone from 8 to
#   16 steps (its printed error at 16 steps is larger than at 8). Its $r_i$ stay near 1 at both step
#   counts (§5 prints them for 10 steps), so this is not the uneven-stride effect above, and the
#   notebook does not explain it; at so few, long steps the solver is not yet in the regime where
#   its error must fall four times per doubling, which it does from 16 steps on.
#
# ## 4. Heun's method (Karras et al. 2022, Algorithm 1)
#
# Karras et al.'s deterministic sampler is Heun's method on $d\tilde x/d\sigma = (\tilde x - D)/\sigma$,
# with one exception: the **last step**, to $\sigma_N = 0$, stays a plain Euler step, because the
# correction would need the slope $(\tilde x - D)/\sigma$ at $\sigma = 0$ (Algorithm 1, line 6: "if
# $\sigma_{i+1} \ne 0$"). Each corrected step calls the network twice: at $(\tilde x_i, \sigma_i)$ and
# at the trial point $(\tilde x', \sigma_{i+1})$. In the package, `HeunSampler.timesteps` lists the
# timesteps of the calls in order, so the one `sample()` loop runs it like any other sampler, and the
# sampler keeps its trial step between the two calls. `sampler.nfe` is the length of that list.

# %%
ddpm_teach.course.section("4. Heun")
heun_5 = HeunSampler(schedule, steps=5, spacing="karras")
print(heun_5)
print("the 5 steps start at t =", heun_5.step_timesteps.tolist(), "and end at σ = 0")
print("the network is called at t =", heun_5.timesteps.tolist())
for i, t_i in enumerate(heun_5.step_timesteps.tolist()):
    sigma_i, sigma_next = float(heun_5.sigmas[i]), float(heun_5.sigmas[i + 1])
    calls = "1 call (Euler only: σ_next = 0)" if sigma_next == 0 else "2 calls (Euler trial, then the correction)"
    print(f"  step {i}: σ {sigma_i:8.4f} → {sigma_next:7.4f}   {calls}")
print("Euler and DPM-Solver++(2M) with 5 steps:", EulerSampler(schedule, steps=5).nfe, "and",
      DPMSolverPP2MSampler(schedule, steps=5).nfe, "network evaluations")

# %% [markdown]
# Each timestep of the list but the first appears twice: the correction of one step and the start
# of the next share a timestep (but not a point: the correction is evaluated at the trial $\tilde x'$,
# the next step at the corrected $\tilde x_{i+1}$).
#
# Algorithm 1 written out by hand with the shipped model, lines numbered as in the paper, and
# checked against the package on a whole 5-step trajectory. The denoiser is clipped to $[-1, 1]$
# as in the package. (The two compute $D$ by algebraically equal routes that round differently in
# float32, and the network passes such differences on, more so on a GPU, so the check allows 1e-3
# on pixels in $[-1, 1]$; a different algorithm would be off by tenths: the cell prints the largest
# difference to Euler's method on the same 5 timesteps.)

# %%
def heun_by_hand(x_T: torch.Tensor, step_timesteps: list[int]) -> torch.Tensor:
    """Karras et al. 2022, Algorithm 1, in x̃ and σ, from x_T [B, 1, 28, 28] to x_0."""
    sigma = [float(sigmas[t]) for t in step_timesteps] + [0.0]                # σ_0 > … > σ_{N−1}, σ_N = 0

    def denoise(x_tilde, i):                                  # D(x̃; σ_i) = x̃ − σ_i ε̂(x_t, t_i), clipped
        x_t = x_tilde / math.sqrt(1 + sigma[i] ** 2)                          # x_t = √ᾱ·x̃
        return (x_tilde - sigma[i] * predict_eps(x_t, step_timesteps[i])).clamp(-1, 1)

    x_tilde = x_T * math.sqrt(1 + sigma[0] ** 2)                              # line 2: x̃_0 = x_T/√ᾱ_T
    for i in range(len(step_timesteps)):                                      # line 3
        d = (x_tilde - denoise(x_tilde, i)) / sigma[i]                        # line 4: d_i = (x̃_i − D)/σ_i
        x_next = x_tilde + (sigma[i + 1] - sigma[i]) * d                      # line 5: Euler step
        if sigma[i + 1] != 0:                                                 # line 6
            d_prime = (x_next - denoise(x_next, i + 1)) / sigma[i + 1]        # line 7: slope at the trial point
            x_next = x_tilde + (sigma[i + 1] - sigma[i]) * 0.5 * (d + d_prime)   # line 8: average slope
        x_tilde = x_next
    return x_tilde                                                            # σ_N = 0: x̃ = x_0


x_T_heun = torch.randn(N_SHOW, 1, 28, 28, generator=generator(6))
by_hand = heun_by_hand(x_T_heun, heun_5.step_timesteps.tolist())
by_package = sample(model, heun_5, x_T=x_T_heun, progress=False).cpu()
torch.testing.assert_close(by_hand, by_package, rtol=1e-3, atol=1e-3)
print(f"heun_by_hand matches sample(model, HeunSampler(steps=5, spacing='karras')) to 1e-3 "
      f"({heun_5.nfe} network calls each)")
by_euler = sample(model, EulerSampler(schedule, steps=5, spacing="karras"), x_T=x_T_heun[:4], progress=False).cpu()
print(f"largest pixel difference, first 4 images: by hand vs package < 1e-3 "
      f"({bool((by_hand - by_package)[:4].abs().max() < 1e-3)}); Heun vs Euler on the same timesteps "
      f"{float((by_package[:4] - by_euler).abs().max()):.1f}")

# %% [markdown]
# The rest of the notebook uses the package. Because a step may cost one call or two, the package
# counts cost in **network function evaluations (NFE)**, `sampler.nfe`, not in steps. That is the
# fair axis on which to compare samplers: a network call is nearly all of the cost of a step. (With classifier-free guidance one evaluation runs the network on a conditional and an
# unconditional batch; the package still counts it as one NFE, for every sampler alike.)
#
# ## 5. DPM-Solver++: solve the easy part exactly
#
# Look at the ODE again: $d\tilde x/d\sigma = (\tilde x - D)/\sigma$. Part of the right-hand side,
# $\tilde x/\sigma$, is *linear* in $\tilde x$ and known exactly; only the denoiser $D$ needs the network.
# An **exponential integrator** (DPM-Solver, Lu et al. 2022a, [arXiv:2206.00927](https://arxiv.org/abs/2206.00927),
# §3.1; DPM-Solver++, Lu et al. 2022b, §4) solves the linear part exactly and approximates only $D$.
# In the variable $\lambda = -\log\sigma$ (half the log-SNR, the right panel of §1's figure) the ODE is
# $d\tilde x/d\lambda = D - \tilde x$, whose exact solution from $\lambda_i$ to $\lambda_{i+1} = \lambda_i + h$ is
#
# $$\tilde x_{i+1} = e^{-h}\,\tilde x_i + \int_{\lambda_i}^{\lambda_{i+1}} e^{-(\lambda_{i+1} - \lambda)}\,D(\lambda)\,d\lambda,
# \qquad e^{-h} = \frac{\sigma_{i+1}}{\sigma_i}.$$
#
# (This is DPM-Solver++'s solution formula for the data-prediction model, written in $\tilde x$; in
# the paper's $x_t$ it carries the factors $\alpha_t$: the paper's $\alpha_t$, which is our $\sqrt{\bar\alpha_t}$,
# not the course's $\alpha_t = 1 - \beta_t$.) Nothing is approximated
# yet. Now only the integral of $D$ needs a rule:
#
# * **First order**: hold $D$ constant at $D_i = D(\tilde x_i; \sigma_i)$. The integral is
#   $(1 - e^{-h})D_i$, and the step is
#   $$\tilde x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}\,\tilde x_i - (e^{-h} - 1)\,D_i
#   \qquad\text{(DPM-Solver++ first order)}:$$
#   keep the share $\sigma_{i+1}/\sigma_i$ of the current point and move the rest of the way to the
#   denoised guess. Write $\tilde x_i = D_i + \sigma_i\hat\varepsilon_i$ and it becomes
#   $D_i + \sigma_{i+1}\hat\varepsilon_i$: **DDIM again** (and so Euler). All three first-order methods are one.
# * **Second order, multistep (2M)**: let $D$ vary linearly in $\lambda$, with the slope taken from
#   the previous step's $D_{i-1}$, which is already paid for. With $r_i = h_{i-1}/h_i$,
#   $$\hat D_i = \Big(1 + \frac{1}{2r_i}\Big)D_i - \frac{1}{2r_i}D_{i-1},\qquad
#   \tilde x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}\,\tilde x_i - (e^{-h_i} - 1)\,\hat D_i
#   \qquad\text{(DPM-Solver++(2M), Lu et al. 2022b Algorithm 2)}.$$
#   One network call per step, second order. The first step has no $D_{i-1}$ and is first order; the
#   last, to $\sigma = 0$, returns $D$ itself: there $\lambda = \infty$, so $h = \infty$, the share
#   $e^{-h} = \sigma_{i+1}/\sigma_i$ kept of $\tilde x_i$ is 0, and $r = h_{i-1}/h = 0$ would make the
#   extrapolation weight $1/(2r)$ infinite, so the step uses $D_i$ alone (first order).
#
# Why $D$ and not $\hat\varepsilon$ (which is what DPM-Solver, without "++", extrapolates)? $D$ is an
# image, bounded in $[-1, 1]$ and clipped there; with classifier-free guidance $\hat\varepsilon$ is
# pushed far out and extrapolating it overshoots. DPM-Solver++ was designed for guided sampling.
#
# The coefficients for a 10-step DPM-Solver++(2M) on Karras spacing (§6), from the schedule alone:

# %%
ddpm_teach.course.section("5. DPM-Solver++")
dpm_10 = DPMSolverPP2MSampler(schedule, steps=10, spacing="karras")
lambdas = -dpm_10.sigmas[:-1].log()                                        # λ_i = −log σ_i, [10]
print(f"{'i':>2}{'t_i':>5}{'σ_i':>10}{'h_i':>8}{'r_i':>7}{'σ_i+1/σ_i':>11}{'weight of D_i':>15}{'of D_i−1':>10}")
for i, t_i in enumerate(dpm_10.step_timesteps.tolist()):
    sigma_i = float(dpm_10.sigmas[i])
    if i == len(lambdas) - 1:
        print(f"{i:>2}{t_i:>5}{sigma_i:>10.4f}{'∞':>8}{'':>7}{0.0:>11.4f}{1.0:>15.4f}{0.0:>10.4f}   last step: x̃ = D")
        continue
    h = float(lambdas[i + 1] - lambdas[i])
    r = float(lambdas[i] - lambdas[i - 1]) / h if i > 0 else None      # r_i = h_{i−1}/h_i
    keep = math.exp(-h)                                                   # σ_{i+1}/σ_i
    w_now, w_prev = ((1 + 1 / (2 * r)), -1 / (2 * r)) if i > 0 else (1.0, 0.0)
    print(f"{i:>2}{t_i:>5}{sigma_i:>10.4f}{h:>8.3f}{'' if r is None else f'{r:.2f}':>7}{keep:>11.4f}{(1 - keep) * w_now:>15.4f}"
          f"{(1 - keep) * w_prev:>10.4f}" + ("   first step: first order" if i == 0 else ""))

# %% [markdown]
# Read the columns: each step keeps the share $\sigma_{i+1}/\sigma_i$ of $\tilde x_i$ and gives the
# rest, $1 - e^{-h}$, to the denoiser, split between this step's $D_i$ and (with a negative weight,
# the extrapolation) the previous one. The package's solver does exactly this. Two checks with the
# shipped model, on 10 uniform steps so that DDIM has the same timesteps: DPM-Solver++(2M)'s
# **first** step equals DDIM's (it is first order), and its **second** step is a DDIM step whose
# $\hat x_0$ is the extrapolation $\hat D_1$ (feed DDIM the $\varepsilon$ that goes with $\hat D_1$).

# %%
dpm_uniform = DPMSolverPP2MSampler(schedule, steps=10)                   # uniform, like ddim_10
ddim_unclipped = DDIMSampler(schedule, steps=10, clip_x0=False)          # x̂_0 is given exactly below
t_0, t_1, t_2 = dpm_uniform.timesteps[:3].tolist()
x_T = torch.randn(N_SHOW, 1, 28, 28, generator=generator(4))

dpm_uniform.begin()
eps_0 = predict_eps(x_T, t_0)
first = dpm_uniform.step(eps_0, t_0, x_T)
torch.testing.assert_close(first.prev_sample, ddim_10.step(eps_0, t_0, x_T).prev_sample)
print(f"step 1 (t = {t_0} → {t_1}): DPM-Solver++(2M) equals DDIM (η = 0)")

x_1 = first.prev_sample
second = dpm_uniform.step(predict_eps(x_1, t_1), t_1, x_1)
D_0, D_1 = first.pred_x0, second.pred_x0                                  # the clipped denoiser outputs
s_0, s_1, s_2 = (float(sigmas[t]) for t in (t_0, t_1, t_2))
r_1 = math.log(s_0 / s_1) / math.log(s_1 / s_2)                          # h_0/h_1
D_hat = (1 + 1 / (2 * r_1)) * D_1 - 1 / (2 * r_1) * D_0                   # the extrapolated x̂_0
eps_for_D_hat = (x_1 * math.sqrt(1 + s_1**2) - D_hat) / s_1              # ε with x̃_1 = D̂ + σ_1 ε
torch.testing.assert_close(second.prev_sample, ddim_unclipped.step(eps_for_D_hat, t_1, x_1).prev_sample)
print(f"step 2 (t = {t_1} → {t_2}): DPM-Solver++(2M) equals a DDIM step with x̂_0 = D̂_1 = "
      f"(1 + 1/2r)·D_1 − 1/2r·D_0, r = {r_1:.3f}")

# %% [markdown]
# ## 6. Where the steps go: Karras et al.'s σ spacing
#
# A solver's error depends on where its steps are, not only on how many there are. The natural
# yardstick of a step is its length in $\lambda = -\log\sigma$, $h = \log(\sigma_i/\sigma_{i+1})$:
# the path $\tilde x(\sigma)$ changes character over orders of magnitude of $\sigma$, not over equal
# differences. Uniform timesteps take equal strides in $t$, and whatever that gives in $\lambda$ is
# an accident of the schedule. Karras et al. 2022 (§3) choose the noise levels instead:
#
# $$\sigma_i = \Big(\sigma_{\max}^{1/\rho} + \frac{i}{N-1}\big(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}\big)\Big)^{\rho},
# \quad i = 0, \dots, N-1, \qquad \sigma_N = 0 \qquad \text{(EDM eq. 5)},$$
#
# uniform in $\sigma^{1/\rho}$: $\rho = 1$ is uniform in $\sigma$ (nearly every step at high noise), and
# $\rho \to \infty$ is uniform in $\log\sigma$ (equal $h$). In between, the strides in $\lambda$ grow
# steadily from high noise to low noise. Karras et al. report that $\rho = 3$ would roughly equalise
# the error of each step, yet $\rho$ between 5 and 10 gives better images, with $\rho = 7$ their choice:
# shorter steps near $\sigma_{\min}$ than equal error would ask for, so errors at low noise, where the
# fine detail forms, seem to matter most. The course's model was trained only at the integer timesteps,
# so `karras_timesteps` moves each $\sigma_i$ to the timestep with the nearest $\log\sigma$. A teaching
# version, checked against the package:

# %%
ddpm_teach.course.section("6. Karras σ spacing")


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """EDM eq. 5: n noise levels from σ_max down to σ_min, uniform in σ^(1/ρ). Returns float64 [n]."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)                   # i/(N − 1)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


targets = karras_sigmas(sigma_min, sigma_max, 10)
nearest = (targets.log()[:, None] - sigmas.log()[None, :]).abs().argmin(dim=1)   # (10, T) → (10,)
assert torch.equal(nearest, karras_timesteps(schedule, 10))
print("karras_timesteps(schedule, 10) matches EDM eq. 5, rounded to the nearest log σ:")
print(f"  {'karras':<8}", nearest.tolist())
print(f"  {'uniform':<8}", ddim_10.timesteps.tolist())
print("  σ, karras: ", [round(float(sigmas[t]), 3) for t in nearest])
print("  σ, uniform:", [round(float(sigmas[t]), 3) for t in ddim_10.timesteps])
strides = {name: (sigmas[ts][:-1] / sigmas[ts][1:]).log() for name, ts in
           (("karras", nearest), ("uniform", ddim_10.timesteps))}                 # h_i = log(σ_i/σ_{i+1}), [9]
for name, h in strides.items():
    print(f"  strides in λ, {name + ':':<8}", [round(float(v), 2) for v in h], f" longest {float(h.max()):.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for rho, style in ((1.0, ":"), (3.0, "--"), (7.0, "-")):
    axes[0].plot(range(10), karras_sigmas(sigma_min, sigma_max, 10, rho).numpy(), style, color="C1",
                 alpha=0.4 + 0.08 * rho, label=f"EDM eq. 5, ρ = {rho:g}")
axes[0].plot(range(10), sigmas[karras_timesteps(schedule, 10)].numpy(), "o", color="C1", label="karras_timesteps (ρ = 7)")
axes[0].plot(range(10), sigmas[ddim_10.timesteps].numpy(), "s-", color="C0", label="uniform timesteps")
axes[0].set_yscale("log")
axes[0].set_xlabel("step i")
axes[0].set_ylabel("σ_i")
axes[0].set_title("10 noise levels, σ_max → σ_min")
for name, marker, color in (("karras", "o-", "C1"), ("uniform", "s-", "C0")):
    axes[1].plot(range(9), strides[name].numpy(), marker, color=color, label=f"{name} ({'ρ = 7' if name == 'karras' else 'in t'})")
axes[1].set_xlabel("step i (from σ_i to σ_i+1)")
axes[1].set_ylabel("h_i = log(σ_i / σ_i+1)")
axes[1].set_title("the length of each step in λ = −log σ")
for ax in axes:
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the strides off the printout and the right panel. Uniform timesteps give fairly even strides
# in $\lambda$, except the last one before $\sigma_{\min}$: from $t = 111$ straight to $t = 0$, the
# longest stride of all, right where the image gets its fine detail. The Karras spacing spreads the
# same total range of $\lambda$ over strides that grow steadily towards low noise, with no single long
# jump. Any solver can use any spacing (`spacing="karras"` on `EulerSampler`, `HeunSampler` and
# `DPMSolverPP2MSampler`; `--spacing karras` on the command line). The benchmark of §8 runs DDIM on
# its usual uniform timesteps, the course's baseline from notebook 06, and the three ODE solvers on
# Karras spacing, as their papers do.
#
# ## 7. Side by side at 10 NFE on the shipped model
#
# Now the real network. The same $x_T$ goes through four samplers at (about) 10 network
# evaluations each: DDIM (uniform timesteps), Euler, Heun and DPM-Solver++(2M) (Karras spacing).
# Heun's count is odd ($2\cdot\text{steps} - 1$), so "10 NFE" is 9 for Heun, as in the benchmark.
#
# A trained network has no exact solution to compare with, but the ODE still has one answer for each
# $x_T$. A very fine solve approximates it: Heun with `REFERENCE_STEPS` steps (99 NFE at full
# size, fewer at CI size). The distance of each sampler's images from that reference measures its
# **solver error** on the real model. It is not the quality of the images: that is §8's FID.

# %%
ddpm_teach.course.section("7. Side by side at 10 NFE")


def make_solver(name: str, nfe: int, schedule):
    """``name`` at (about) ``nfe`` network evaluations, as benchmarks/quality_tables.py builds it: DDIM on
    uniform timesteps, the ODE solvers on Karras spacing; Heun gets the largest 2·steps − 1 ≤ nfe."""
    if name == "DDIM":
        return DDIMSampler(schedule, steps=nfe)
    if name == "Heun":
        return HeunSampler(schedule, steps=(nfe + 1) // 2, spacing="karras")
    return {"Euler": EulerSampler, "DPM++2M": DPMSolverPP2MSampler}[name](schedule, steps=nfe, spacing="karras")


SAMPLERS = ("DDIM", "Euler", "Heun", "DPM++2M")
x_T_model = torch.randn(N_SAMPLES, 1, 28, 28, generator=generator(5))   # (N_SAMPLES, 1, 28, 28)

# %%
# NBVAL_IGNORE_OUTPUT
reference_sampler = HeunSampler(schedule, steps=REFERENCE_STEPS, spacing="karras")
with timed(f"reference solve: {reference_sampler} on {N_SAMPLES} images"):
    reference = sample(model, reference_sampler, x_T=x_T_model, progress=False).cpu()

runs = {}
for nfe in NFE_BUDGETS:
    for name in SAMPLERS:
        sampler = make_solver(name, nfe, schedule)
        images, trajectory = sample(model, sampler, x_T=x_T_model, progress=False, return_trajectory=True)
        runs[name, nfe] = {"nfe": sampler.nfe, "images": images.cpu(), "trajectory": trajectory,
                           "distance": float((images.cpu() - reference).pow(2).mean().sqrt())}
print(f"RMS distance from the reference solution (pixels in [−1, 1]; {N_SAMPLES} images, the same x_T)")
print(f"{'budget':>7}" + "".join(f"{name:>16}" for name in SAMPLERS))
for nfe in NFE_BUDGETS:
    print(f"{nfe:>7}" + "".join(f"{runs[name, nfe]['distance']:>10.4f} ({runs[name, nfe]['nfe']:>2})" for name in SAMPLERS))
print("(in brackets: the sampler's NFE)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1, 1.5]})
for i, name in enumerate(SAMPLERS):
    axes[0].plot([runs[name, nfe]["nfe"] for nfe in NFE_BUDGETS], [runs[name, nfe]["distance"] for nfe in NFE_BUDGETS],
                 "o-", color=f"C{i}", label=name)
axes[0].set_xscale("log")
axes[0].set_yscale("log")
axes[0].set_xticks(NFE_BUDGETS, [str(n) for n in NFE_BUDGETS])     # Heun's odd NFE sit just left of them
axes[0].xaxis.set_minor_locator(plt.NullLocator())
axes[0].set_xlabel("NFE")
axes[0].set_ylabel("RMS distance from the reference")
axes[0].set_title("solver error on the shipped model")
axes[0].grid(True, which="both", alpha=0.3)
axes[0].legend(fontsize=8)
budget = 10 if 10 in NFE_BUDGETS else NFE_BUDGETS[-1]
rows = [x0_real] + [runs[name, budget]["images"][:N_SHOW] for name in SAMPLERS] + [reference[:N_SHOW]]
show_images(torch.cat(rows), nrow=N_SHOW, ax=axes[1])
labels = ["real (test set)"] + [f"{name} ({runs[name, budget]['nfe']} NFE)" for name in SAMPLERS] + \
    [f"reference ({reference_sampler.nfe} NFE)"]
axes[1].set_yticks([(28 + 2) * (i + 0.5) + 1 for i in range(len(rows))], labels, fontsize=9)
axes[1].tick_params(length=0)
axes[1].set_title("real images; samples from the same x_T per column")
fig.tight_layout()
plt.show()

# %% [markdown]
# The first row holds real test images, to remind you what the garments should look like (they
# do not belong to the columns). Below them, one $x_T$ per column through each sampler. DDIM, Euler and
# DPM-Solver++(2M) make the same garment from the same $x_T$ (the same ODE, solved more or less
# accurately) and differ in detail and contrast. Compare each row with the reference at the bottom;
# the left panel puts a number on it at each budget. **Heun at 9 NFE** is the odd one out: look at
# its row closely (and, at full size, at its 5-NFE point in the left panel); the next figure shows
# where it goes wrong.
#
# Now one image over the course of the solve: the sampler's $\hat x_0 = D$ at every network call
# (Heun's two calls per step show as repeated timesteps), and the result on the right.

# %%
fig, axes = plt.subplots(len(SAMPLERS), budget + 1, figsize=(1.05 * (budget + 1), 1.25 * len(SAMPLERS) + 0.3),
                         squeeze=False)
for row, name in enumerate(SAMPLERS):
    trajectory = runs[name, budget]["trajectory"]
    frames = list(to_unit_range(trajectory.pred_x0[:, 0])) + [to_unit_range(runs[name, budget]["images"][0])]
    titles = [f"t={t}" for t in trajectory.timesteps.tolist()] + ["result"]
    for col, ax in enumerate(axes[row]):
        ax.set_xticks([])
        ax.set_yticks([])
        if col < len(frames):
            ax.imshow(frames[col][0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(titles[col], fontsize=7)
        else:
            ax.axis("off")
    axes[row, 0].set_ylabel(f"{name}\n({runs[name, budget]['nfe']} NFE)", fontsize=8)
fig.suptitle("x̂_0 = D at each network call, one image, the same x_T", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# In Heun's row each timestep after the first appears twice: the **first** frame of a pair is $D$ at
# the **trial point** $\tilde x'$ (line 7, the correction of the step that ends there), the **second**
# is $D$ at the **corrected** $\tilde x_{i+1}$ (line 4 of the next step). Which step does the damage?
# The cell below follows Heun's 5 Karras steps on the first `N_SHOW` images and compares every point
# with a fine solve of the same ODE (Heun with about 24 substeps per step, spaced evenly in
# $\log\sigma$). For each step it prints the RMS distance of the trial point and of the corrected point
# from the fine solution, divided by $\sigma_{i+1}$ (the noise the image should still hold: above 1
# means the error is larger than that noise), for the run itself and for one step started on the fine path.

# %%
# NBVAL_IGNORE_OUTPUT
def denoise_at(x_tilde: torch.Tensor, t: int) -> torch.Tensor:
    """D(x̃; σ_t) = x̃ − σ_t ε̂(x_t, t), clipped to [−1, 1] as in the package; x̃ [B, 1, 28, 28]."""
    sigma_t = float(sigmas[t])
    return (x_tilde - sigma_t * predict_eps(x_tilde / math.sqrt(1 + sigma_t**2), t)).clamp(-1, 1)


def heun_step(x_tilde: torch.Tensor, t: int, t_next: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One Heun step (Karras et al. Alg. 1 lines 4-8) from σ_t to σ_{t_next} > 0: (trial x̃', corrected x̃)."""
    sigma_t, sigma_next = float(sigmas[t]), float(sigmas[t_next])
    d = (x_tilde - denoise_at(x_tilde, t)) / sigma_t                            # line 4
    trial = x_tilde + (sigma_next - sigma_t) * d                                # line 5
    d_prime = (trial - denoise_at(trial, t_next)) / sigma_next                  # line 7
    return trial, x_tilde + (sigma_next - sigma_t) * 0.5 * (d + d_prime)        # line 8


def fine_solve(x_tilde: torch.Tensor, t: int, t_next: int, substeps: int = 24) -> torch.Tensor:
    """Heun from σ_t to σ_{t_next} on about ``substeps`` timesteps spaced evenly in log σ."""
    targets = torch.linspace(math.log(sigmas[t]), math.log(sigmas[t_next]), substeps + 1, dtype=torch.float64)
    grid = (targets[:, None] - sigmas.log()[None, :]).abs().argmin(dim=1).unique_consecutive().tolist()
    for t_a, t_b in zip(grid[:-1], grid[1:]):
        x_tilde = heun_step(x_tilde, t_a, t_b)[1]
    return x_tilde


heun_steps = heun_5.step_timesteps.tolist()                                     # [999, 843, 593, 142, 0]
run_x = x_T_model[:N_SHOW] * math.sqrt(1 + float(sigmas[heun_steps[0]]) ** 2)  # x̃ at σ_max, (N_SHOW, 1, 28, 28)
fine_x = run_x.clone()
print(f"{'step':>4}{'σ_i → σ_i+1':>20}{'|Δσ|/2':>8}   {'run: trial':>11}{'corrected':>10}   "
      f"{'one step from fine: trial':>26}{'corrected':>10}   (RMS distance/σ_i+1)")
for i, (t_i, t_next) in enumerate(zip(heun_steps[:-1], heun_steps[1:])):
    sigma_i, sigma_next = float(sigmas[t_i]), float(sigmas[t_next])
    run_trial, run_next = heun_step(run_x, t_i, t_next)
    fine_trial, fine_corrected = heun_step(fine_x, t_i, t_next)
    fine_next = fine_solve(fine_x, t_i, t_next)
    rms = [float((x - fine_next).pow(2).mean().sqrt()) / sigma_next for x in (run_trial, run_next, fine_trial, fine_corrected)]
    print(f"{i:>4}{f'{sigma_i:.2f} → {sigma_next:.2f}':>20}{(sigma_i - sigma_next) / 2:>8.2f}   "
          f"{rms[0]:>11.2f}{rms[1]:>10.2f}   {rms[2]:>26.2f}{rms[3]:>10.2f}")
    run_x, fine_x = run_next, fine_next

# %% [markdown]
# What to look for:
#
# * In every row the garment appears in $\hat x_0$ as $\sigma$ falls through a few units to about 1
#   ($t$ from about 500 to 250, §1's table): the early calls decide the coarse shape, the late ones
#   the detail. DDIM, Euler and DPM-Solver++(2M) agree on the shape and differ in the last calls.
# * **Heun with 5 steps** goes wrong in the **corrections of its long low-noise steps**, not in one
#   place. In its row, the first $t = 142$ frame ($D$ at the trial point of the step
#   $\sigma \approx 5.91 \to 0.49$) is still a smooth garment, the second ($D$ at the corrected point)
#   is already speckled. The printout above says the same in numbers: in that step the Euler trial
#   stays closer to the fine solution than the noise level $\sigma_{i+1}$ (ratio below 1), and the
#   correction pushes it above 1; in the last corrected step, $\sigma \approx 0.49 \to 0.01$, the
#   correction makes things worse again, even when the step starts on the fine path. The reason: line 7
#   evaluates the $\varepsilon$-network at the trial point, a point off the path at low noise, where
#   the network is least accurate, and line 8 multiplies that $\hat\varepsilon$ by $|\Delta\sigma|/2$
#   (2.71 and 0.24 here), which is far more than the noise $\sigma_{i+1}$ (0.49 and 0.01) that the image
#   should still hold. $D = \tilde x' - \sigma_{i+1}\hat\varepsilon$ at the trial point scales the same
#   error only by $\sigma_{i+1}$, which is why the trial frame still looks clean. The second-order
#   argument of §3 assumes steps short enough that the slope changes smoothly across each one and is
#   evaluated accurately. With more steps (the reference, or Heun at 19 NFE in the left panel at full
#   size) the low-noise steps are short and the problem goes away. Euler and DPM-Solver++(2M) never
#   evaluate the network at a trial point: they only use $D$ at points the solver actually reaches.
#
# ## 8. The measured table: FID against NFE
#
# Accuracy against a reference is not the goal; images that look like the data are. The course
# measures that with the classifier-FID of notebook 05 (always with $N$ and the real-vs-real floor at
# the same $N$). Sampling 1000 images per setting takes minutes to hours on a CPU, so the table is
# measured by a benchmark script, not in this notebook, and committed with the repository. Reproduce
# it (the `solvers` table; `ddpm` gives the DDPM-1000 line, `ddim` and `guidance` notebook 06's and
# 07's rows) with
#
# ```
# python benchmarks/quality_tables.py --tables solvers --n 1000 --precision bf16 \
#     --out benchmarks/results/quality_n1000.json --resume
# python benchmarks/quality_tables.py --tables ddpm --n 1000 --ddpm-n 1000 --precision bf16 \
#     --out benchmarks/results/quality_n1000.json --resume
# ```
#
# and a single setting from the command line with, e.g.,
# `python -m ddpm_teach sample --checkpoint checkpoints/fashion_mnist_ddpm.pt --sampler dpmpp2m --steps 20 --spacing karras --n 1000 --seed 0 --out s.npz`
# (`--steps` are solver steps; the printout states the NFE). The cells below read the JSON file and
# print and plot whatever it holds.

# %%
ddpm_teach.course.section("8. FID against NFE")
# NBVAL_IGNORE_OUTPUT
# (reads benchmarks/results/quality_n1000.json, which the benchmark rewrites)
RESULTS_PATH = ddpm_teach.course.repo_root() / "benchmarks" / "results" / "quality_n1000.json"
SETTING = re.compile(r"^(s=2 )?(DDIM|Euler|Heun|DPM\+\+2M) NFE=(\d+)$")   # the solvers table's settings


def seconds_per_1000(row: dict) -> float:
    return row.get("seconds_per_1000", 1000 * row["seconds"] / row["n"])


def solver_rows(results: dict) -> dict:
    """{(guided, sampler): [rows sorted by NFE]} from the 'solvers' table of a quality_tables.py JSON."""
    table = {}
    for row in results.get("rows", []):
        match = SETTING.match(row["setting"]) if row.get("table") == "solvers" else None
        if match:
            table.setdefault((bool(match[1]), match[2]), []).append(row)
    return {key: sorted(rows, key=lambda r: r["nfe"]) for key, rows in table.items()}


def find_row(results: dict, table: str, setting: str) -> dict | None:
    return next((r for r in results.get("rows", []) if r.get("table") == table and r["setting"] == setting), None)


def print_solver_table(results: dict) -> None:
    table = solver_rows(results)
    print(f"{RESULTS_PATH.name}: device {results.get('device')}, network precision {results.get('precision')}, "
          f"torch {results.get('torch')}")
    ddpm = find_row(results, "ddpm", "DDPM-1000 β̃")
    print(f"{'sampler':<10}{'NFE':>5}{'N':>6}{'FID':>8}{'floor':>8}{'s per 1000':>12}")
    if ddpm:
        print(f"{'DDPM β̃':<10}{1000:>5}{ddpm['n']:>6}{ddpm['fid']:>8.3f}{ddpm['fid_floor']:>8.3f}{seconds_per_1000(ddpm):>12.0f}")
    for name in SAMPLERS:
        for row in table.get((False, name), []):
            print(f"{name:<10}{row['nfe']:>5}{row['n']:>6}{row['fid']:>8.3f}{row['fid_floor']:>8.3f}{seconds_per_1000(row):>12.0f}")
    guided = [row for name in SAMPLERS for row in table.get((True, name), [])]
    ddim_50_guided = find_row(results, "guidance", "s=2 (w=1) DDIM-50")
    if guided or ddim_50_guided:
        print("\nguided, fashion_mnist_cfg.pt at s = 2 (w = 1): FID and conditional accuracy")
        print(f"{'sampler':<10}{'NFE':>5}{'N':>6}{'FID':>8}{'floor':>8}{'accuracy':>10}{'s per 1000':>12}")
        for label, row in [(r["setting"].split()[1], r) for r in guided] + [("DDIM", ddim_50_guided)]:
            if row:
                nfe = row.get("nfe", 50)
                print(f"{label:<10}{nfe:>5}{row['n']:>6}{row['fid']:>8.3f}{row['fid_floor']:>8.3f}"
                      f"{100 * row['accuracy']:>9.1f}%{seconds_per_1000(row):>12.0f}")


if not RESULTS_PATH.is_file():
    results = {}
    print(f"{RESULTS_PATH} is missing: run the benchmark commands above to measure the table.")
else:
    results = json.loads(RESULTS_PATH.read_text())
    if not solver_rows(results):
        print(f"The fast-sampler table has not been measured yet: {RESULTS_PATH.name} holds no rows of the "
              "'solvers' table. Measure it with\n  python benchmarks/quality_tables.py --tables solvers --n 1000 "
              "--precision bf16 --out benchmarks/results/quality_n1000.json --resume")
    else:
        print_solver_table(results)

# %%
# NBVAL_IGNORE_OUTPUT
# (plots whatever the benchmark file holds; nothing when the solvers table is not measured yet)
table = solver_rows(results)
if table:
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for i, name in enumerate(SAMPLERS):
        rows = table.get((False, name), [])
        if rows:
            ax.plot([r["nfe"] for r in rows], [r["fid"] for r in rows], "o-", color=f"C{i}",
                    label=name + (" (uniform)" if name == "DDIM" else " (Karras σ)"))
    ddpm = find_row(results, "ddpm", "DDPM-1000 β̃")
    if ddpm:
        ax.axhline(ddpm["fid"], color="k", linestyle="--", linewidth=1.2, label=f"DDPM, 1000 steps, σ² = β̃ (N = {ddpm['n']})")
    any_row = next(iter(table.values()))[0]
    ax.axhline(any_row["fid_floor"], color="0.5", linestyle=":", linewidth=1.2,
               label=f"real-vs-real floor (N = {any_row['n']})")
    ax.set_xscale("log")
    ax.set_yscale("log")                                             # the DDPM line and the floor stay readable
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:g}"))
    nfes = sorted({r["nfe"] for (guided, name), rows in table.items() if name != "Heun" for r in rows})
    ax.set_xticks(nfes, [str(n) for n in nfes])                      # Heun's odd NFE sit just left of them
    ax.minorticks_off()
    low, high = ax.get_ylim()                                        # labelled y ticks, 2 to 5 included
    ax.set_yticks([y for y in (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100) if low <= y <= high])
    ax.set_ylim(low, high)
    ax.set_xlabel("network evaluations per image (NFE)")
    ax.set_ylabel("classifier-FID (lower is better, log scale)")
    ax.set_title(f"fashion_mnist_ddpm.pt: quality against cost (N = {any_row['n']} per point)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
else:
    print("no solvers rows in the benchmark file yet: nothing to plot")

# %% [markdown]
# How to read the table and the plot (the numbers are in the printout, measured by the command
# above on the machine it names; they change with the checkpoint and with $N$):
#
# * **The DDPM line** is the model's quality with its own 1000-step sampler. A fast sampler that
#   reaches it at 10-20 NFE costs 50-100 times less for the same images. The **floor** is what
#   1000 real images score: no sampler can be expected below it.
# * **DDIM vs Euler** are the same method on different timesteps (§2): any gap between their curves
#   is the effect of the spacing (§6).
# * **The second-order solvers** should reach a given FID at fewer NFE than the first-order ones,
#   most clearly at 10-20 NFE; check how close DPM-Solver++(2M) at 20 NFE comes to the DDPM line,
#   and compare DPM-Solver++(2M) at 10 NFE with DDIM at 50. That last gap is well within the seed
#   spread of FID: the repository's README says differences under about 0.5 at $N = 1000$ are not
#   resolved, so read it as "10 NFE of DPM-Solver++(2M) are as good as 50 of DDIM", not as a win.
#   Heun pays two calls per step, so at the smallest budgets it has very few, long steps, and the
#   corrections of its long low-noise steps break down on this model (§7): expect its first points
#   to be poor (its 5-NFE point sits far above the others; the log scale keeps it on the plot).
# * **More NFE is not always better.** Once the ODE is solved accurately, FID measures the
#   *model's* error, and the curves flatten; a less accurate solve can even score a little better
#   if its error happens to offset the model's (notebook 06 saw DDIM's $\eta = 0$ column plateau).
#   Differences of the size of the floor are within the sampling noise of FID at this $N$: trust
#   the trends more than any single decimal.
# * **Guided** (the second table): DPM-Solver++ was designed for classifier-free guidance; compare its
#   FID and conditional accuracy at 10 and 20 NFE with DDIM's at the same NFE and at 50. These rows
#   come from another checkpoint (`fashion_mnist_cfg.pt`, notebook 07) and another setting (guidance
#   $s = 2$), so their FIDs are not comparable with the unguided DDPM line above; the guided
#   DPM-Solver++(2M) rows use Karras spacing, the guided DDIM rows uniform timesteps.
# * **Seconds per 1000 images**: for the ODE solvers (Euler, Heun, DPM-Solver++(2M)) they grow with
#   NFE at about 2.6 to 3 s per NFE per 1000 images: the network is nearly all the cost. The DDIM
#   rows do not follow that rate. In the stored `quality_n1000.json`, DDIM took about 5 s per NFE at 5
#   and 10 NFE (about twice the solvers' rate), 6 to 7.5 s at 20 and 35 NFE, and about 3.3 s at 50;
#   only its 15-NFE row ran at the solvers' rate. A DDIM step costs one network call like the others,
#   so the difference is not the method: most likely the load on the machine, as for the rows at 20-50
#   NFE, which were measured while another job used it. Compare seconds only between rows measured
#   alike, and do not read a trend off DDIM's.
#
# ## 9. When to use which
#
# * **DDIM (η = 0) / Euler**: first order. Fine at 50+ NFE, simple, exactly invertible (encode an
#   image to its $x_T$ by running it backwards). Whether Karras spacing helps the first-order method
#   on this model, the table's DDIM and Euler rows say.
# * **DPM-Solver++(2M)** on Karras spacing: the usual default at 10-25 NFE, with or without
#   guidance (check it against §8's table for this model): second order at one call per step. It needs the previous step's $D$, so it is not
#   self-starting (first step first order), and very uneven successive steps ($r_i$ far from 1,
#   §3) cost accuracy.
# * **Heun**: second order, self-starting, a good reference solver with many steps (as in §7), but
#   two calls per step and fragile with few (§7); Karras et al. use it at 35 NFE on CIFAR-10.
# * **DDPM or DDIM with η > 0** (stochastic): when NFE is not the constraint. Fresh noise can wash
#   out a weak model's errors (notebook 06), which an ODE solver carries to the end.
#
# ## 10. Exercises
#
# **Exercise 1.** You may spend at most **30 network evaluations** per batch of images (linear
# schedule, $T = 1000$, no guidance). How many solver steps can you give DPM-Solver++(2M), and how
# many Heun's method (Karras et al. Algorithm 1, as in `HeunSampler`)? Take the largest number of
# steps that fits each budget. Work it out from §4 and §5, then check with
# `ddpm_teach.exercises.nb09.check_budget_steps((dpm_steps, heun_steps))`.
#
# **Exercise 2.** Write one **first-order DPM-Solver++ step** in $\tilde x$ coordinates, as a
# function `my_step(schedule, x_t, eps, t, t_next)` that returns $x_{t_{\text{next}}}$ (in $x_t$'s
# scaling, like every sampler's `prev_sample`) from $x_t$ [B, C, H, W], the network's $\hat\varepsilon$
# and two 0-based timesteps $t > t_{\text{next}} \ge 0$. Use the unclipped $D = \hat x_0$. The recipe:
# $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$ at both timesteps, $\tilde x_t = x_t\sqrt{1+\sigma_t^2}$,
# $D = \tilde x_t - \sigma_t\hat\varepsilon$, $h = \lambda_{\text{next}} - \lambda_t$ with $\lambda = -\log\sigma$,
# the first-order step of §5, and back to $x$ with $x = \tilde x/\sqrt{1+\sigma^2}$. Then check it
# with `ddpm_teach.exercises.nb09.check_first_order_step(my_step)`: the check compares it with
# `DDIMSampler(schedule, steps=10, eta=0, clip_x0=False).step` on three jumps, so it passes exactly
# when your step is a DDIM step.
#
# Try them in the next cell; a worked solution to each is in **Solutions** at the end of the notebook
# (hidden; click to show).

# %%
ddpm_teach.course.section("10. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb09.check_budget_steps((..., ...))
#
# def my_step(schedule, x_t, eps, t, t_next):
#     ...
# ddpm_teach.exercises.nb09.check_first_order_step(my_step)

# %% [markdown]
# ## Summary
#
# * In $\tilde x = x_t/\sqrt{\bar\alpha_t} = x_0 + \sigma\varepsilon$ with $\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$,
#   the probability-flow ODE (Song et al. 2021 eq. 13) is $d\tilde x/d\sigma = \hat\varepsilon = (\tilde x - D)/\sigma$
#   (DDIM eq. 14; Karras et al. 2022 §2): the network's output is the slope of the path from noise
#   to data. For the linear schedule $\sigma$ runs from about 157 down to about 0.01.
# * **DDIM with $\eta = 0$ is Euler's method** on that ODE, checked step for step against
#   `EulerSampler` on the shipped model; it is also first-order DPM-Solver++ (exercise 2).
# * Euler is **first order**, Heun and DPM-Solver++(2M) **second order**: on Gaussian data, where the
#   exact solution is known, the package's samplers showed global errors falling as NFE$^{-1}$ and
#   NFE$^{-2}$, from local errors of order $\Delta\sigma^2$ and $\Delta\sigma^3$.
# * **Heun** (Karras et al. Alg. 1) corrects each Euler step with the slope at its end: 2 network
#   calls per step, none extra on the last step to $\sigma = 0$, so NFE $= 2\cdot$steps $- 1$. With
#   few steps its correction trusts the network at a trial point it cannot judge, and on the shipped
#   model 5 steps already give speckled images (§7): the order of a method is a promise about small steps.
# * **DPM-Solver++(2M)** solves the linear part of the ODE exactly in $\lambda = -\log\sigma$ and
#   extrapolates only the denoiser $D$ from the previous step: second order at one call per step,
#   and built for guidance.
# * **Karras spacing** (EDM eq. 5, $\rho = 7$) moves steps from the nearly straight high-noise part of
#   the path to the low-noise part where the image forms.
# * §8 reads the measured classifier-FID against NFE (N, floor and seconds per 1000 images beside
#   every number) from `benchmarks/results/quality_n1000.json`; its markdown says what to compare,
#   the printout gives the numbers.
#
# **Further reading.** Karras et al. 2022 §4 (stochastic sampling: adding noise back, the "churn");
# Lu et al. 2022a (DPM-Solver, the $\hat\varepsilon$ version and its third-order single-step
# variants); Zhang & Chen 2023, *DEIS*; Zhao et al. 2023, *UniPC*. Flow matching (Lipman et al.
# 2023) meets the same kind of ODE in straight-line coordinates.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of §10. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# DPM-Solver++(2M) makes 1 call per step; Heun 2 per step but 1 on the
# last step (to σ = 0), so n steps cost 2n − 1 ≤ 30 calls: n = 15 (29 calls; 16 steps would need 31).
answer_1 = (30, 15)
assert DPMSolverPP2MSampler(schedule, steps=30).nfe == 30 and HeunSampler(schedule, steps=15).nfe == 29
ddpm_teach.exercises.nb09.check_budget_steps(answer_1)


# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# The exponential integrator with D held constant (§5).
def dpm_solver_1_step(schedule, x_t, eps, t, t_next):
    """One first-order DPM-Solver++ step from t to t_next (t > t_next ≥ 0): x_t [B, C, H, W] → x_{t_next}."""
    alpha_bar, alpha_bar_next = float(schedule.alphas_cumprod[t]), float(schedule.alphas_cumprod[t_next])
    sigma, sigma_next = math.sqrt((1 - alpha_bar) / alpha_bar), math.sqrt((1 - alpha_bar_next) / alpha_bar_next)
    x_tilde = x_t * math.sqrt(1 + sigma**2)                       # x̃_t = x_t/√ᾱ_t
    denoised = x_tilde - sigma * eps                              # D = x̂_0 (unclipped)
    h = math.log(sigma) - math.log(sigma_next)                    # λ_next − λ_t, λ = −log σ
    x_tilde_next = (sigma_next / sigma) * x_tilde - math.expm1(-h) * denoised
    return x_tilde_next / math.sqrt(1 + sigma_next**2)            # back to x_{t_next}


ddpm_teach.exercises.nb09.check_first_order_step(dpm_solver_1_step)

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
# ← [08 · Learned variance](08_learned_variance.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [10 · Latent diffusion →](10_latent_diffusion.ipynb)
