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
# # 06 · DDIM sampling
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/06_ddim_sampling.ipynb)
#
# ← [05 · DDPM sampling](05_ddpm_sampling.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [07 · Classifier-free guidance →](07_guidance.ipynb)
#
# Notebook 05 sampled with DDPM's Algorithm 2, which undoes the forward Markov chain one small
# step at a time (1000 model calls per image), and respaced it to fewer steps. DDIM (Song, Meng &
# Ermon 2021, *Denoising Diffusion Implicit Models*, [arXiv:2010.02502](https://arxiv.org/abs/2010.02502))
# samples from **the same trained model** and adds what respacing alone does not give: a
# deterministic sampler, a knob $\eta$ for how much fresh noise each step draws, and (on the paper's
# well-trained models) good samples in 10 to 50 calls. It needs no retraining: it changes only the sampler. This notebook derives it, checks it against the package, and measures what
# fewer steps cost in quality.
#
# **Learning goals.** By the end you can
# 1. explain why a model trained on DDPM's objective also fits a whole *family* of non-Markovian
#    forward processes (DDIM eq. 7), all with DDPM's marginals $q(x_t \mid x_0)$;
# 2. write the DDIM update (eq. 12) term by term: predicted $x_0$, the direction pointing to $x_t$,
#    and fresh noise; and check it against `ddpm_teach.samplers.DDIMSampler.step`;
# 3. compute $\sigma_t(\eta)$ (eq. 16), and show that $\eta = 0$ is deterministic while $\eta = 1$
#    over all $T$ steps *is* DDPM;
# 4. choose a sub-sequence $\tau$ of timesteps (uniform, leading, trailing, quadratic spacing);
# 5. use determinism: the same $x_T$ gives nearly the same image at 10 or 100 steps, and a
#    spherical interpolation between two $x_T$ morphs one image into another;
# 6. read a **measured** table of classifier-FID against the number of steps and $\eta$.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-11-22): 164 s
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-02, 12-07): 226-283 s (four runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): 14-18 s (AMD, 2026-12-07).
#   Slower with no native bf16, fewer cores or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - Most of it is the quality table of section 7: 12 sampling runs of `N_FID` images.

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
#
# The size knob is the environment variable `DDPM_TEACH_SIZE`: `full` (the default) or `ci` (what
# `pytest --nbval` runs). It changes only how many images the quality table of section 7 scores
# (`N_FID`), which step counts it tries, and how many images the figures show. The model is the
# shipped unconditional Fashion-MNIST checkpoint at both sizes, so the pictures look the same.

# %%
import ddpm_teach.course
ddpm_teach.course.section("Imports and the shipped model")      # the last cell prints the time per section

import math
import time

import matplotlib.pyplot as plt
import matplotlib.ticker
import torch

import ddpm_teach.exercises.nb06
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.course import by_size, checkpoint_path, timed
from ddpm_teach.data import load_dataset
from ddpm_teach.devices import pick_device
from ddpm_teach.evaluation import Evaluator
from ddpm_teach.forward import q_sample
from ddpm_teach.plotting import plot_ddim_terms, show_images
from ddpm_teach.samplers import DDIMSampler, DDPMSampler, sample

torch.manual_seed(0)                        # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" or "ci"
DEVICE = pick_device("auto")               # a GPU if there is one (e.g. in Colab), else the CPU
N_FID = by_size(full=100, ci=16)                        # images per cell of the quality table (section 7)
TABLE_STEPS = by_size(full=(10, 20, 50, 100), ci=(5, 10))   # DDIM step counts in the table
TABLE_ETAS = (0.0, 0.5, 1.0)                            # η values in the table
N_SHOW = by_size(full=8, ci=4)                          # images per row in the figures
INTERP_STEPS = by_size(full=50, ci=20)                  # DDIM steps for the interpolation figure
FIGURE_STEPS = by_size(full=(10, 20, 50, 100), ci=(5, 10, 20))   # step counts in the determinism figure


def generator(seed: int) -> torch.Generator:
    """A fresh CPU generator: the only source of randomness of each sampling call (the package
    draws on the generator's device and moves the numbers, so they are the same on any DEVICE)."""
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def predict_eps(x_t: torch.Tensor, t: int) -> torch.Tensor:
    """The shipped model's ε̂(x_t, t) for a batch x_t [B, 1, 28, 28] at one timestep t, on the CPU."""
    # (``model`` is loaded in the next cell)
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
# ## 1. A family of forward processes with the same marginals
#
# **Notation.** The DDIM paper writes $\alpha_t$ for what DDPM (and this course) calls
# $\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)$. Below everything is in the course's notation,
# so DDIM's $\alpha_t$ appears as $\bar\alpha_t$. Timesteps are 0-based indices as everywhere in
# `ddpm_teach`; $\bar\alpha$ "before the first step" is 1.
#
# DDPM's training loss, $\lVert \varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}\,x_0 +
# \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t)\rVert^2$, only ever uses the **marginals**
# $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)$. It never uses the
# Markov chain $q(x_t \mid x_{t-1})$ that produced them. So any other process with the same
# marginals would have trained the very same $\varepsilon_\theta$, and can be used to sample.
#
# DDIM (§3.1) builds such a family, indexed by a vector $\sigma \ge 0$. It is defined backwards,
# through $q_\sigma(x_T \mid x_0) = \mathcal N(\sqrt{\bar\alpha_T}\,x_0, (1-\bar\alpha_T)I)$ and, for
# every $t$,
#
# $$q_\sigma(x_{t-1} \mid x_t, x_0) = \mathcal N\Big(\sqrt{\bar\alpha_{t-1}}\,x_0 +
# \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\cdot\frac{x_t - \sqrt{\bar\alpha_t}\,x_0}{\sqrt{1-\bar\alpha_t}},\
# \sigma_t^2 I\Big) \qquad \text{(DDIM eq. 7)}.$$
#
# The fraction $\frac{x_t - \sqrt{\bar\alpha_t}x_0}{\sqrt{1-\bar\alpha_t}}$ is exactly the noise
# $\varepsilon$ that made $x_t$. Eq. 7 keeps a share $\sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}$ of it
# and tops the variance back up to $1 - \bar\alpha_{t-1}$ with fresh noise of variance $\sigma_t^2$.
# So $q_\sigma(x_{t-1} \mid x_0)$ is again $\mathcal N(\sqrt{\bar\alpha_{t-1}}\,x_0, (1-\bar\alpha_{t-1})I)$
# for **every** $\sigma$ (DDIM Lemma 1). The forward direction $q_\sigma(x_t \mid x_{t-1}, x_0)$
# follows by Bayes' rule (eq. 8) and depends on $x_0$: the process is no longer Markovian.
#
# Nothing in eq. 7 needs $t-1$ to be the *next* index either: the same formula jumps from any $t$
# to any earlier $s$. Here is a numerical check, on one pixel with $x_0 = 0.7$ and a jump from
# $t = 600$ to $s = 300$, for three values of $\sigma$: the smallest ($0$), DDPM's ($\eta = 1$ in
# section 3) and the largest ($\sqrt{1-\bar\alpha_s}$, where $x_s$ forgets $x_t$ completely).
# Mean and variance of $x_s$ stay on target every time; only its correlation with $x_t$ changes.

# %%
ddpm_teach.course.section("1. A family of forward processes")
M = 400_000                                   # draws of one pixel
x0_pixel = 0.7
t, s = 600, 300
alpha_bar_t, alpha_bar_s = float(schedule.alphas_cumprod[t]), float(schedule.alphas_cumprod[s])
g = generator(1)
eps = torch.randn(M, generator=g, dtype=torch.float64)
x_t = math.sqrt(alpha_bar_t) * x0_pixel + math.sqrt(1 - alpha_bar_t) * eps      # x_t ~ q(x_t | x_0)   (eq. 4)

sigma_ddpm = math.sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s))
print(f"target q(x_s | x_0): mean √ᾱ_s·x_0 = {math.sqrt(alpha_bar_s) * x0_pixel:.4f}, variance 1 − ᾱ_s = {1 - alpha_bar_s:.4f}")
print(f"{'σ':<26}{'mean':>8}{'variance':>10}{'corr(x_t, x_s)':>16}")
for name, sigma in [("0 (DDIM, η = 0)", 0.0), (f"{sigma_ddpm:.4f} (DDPM-like, η = 1)", sigma_ddpm),
                    (f"{math.sqrt(1 - alpha_bar_s):.4f} (largest)", math.sqrt(1 - alpha_bar_s))]:
    eps_true = (x_t - math.sqrt(alpha_bar_t) * x0_pixel) / math.sqrt(1 - alpha_bar_t)       # the ε inside x_t
    mean = math.sqrt(alpha_bar_s) * x0_pixel + math.sqrt(max(1 - alpha_bar_s - sigma**2, 0.0)) * eps_true  # eq. 7
    x_s = mean + sigma * torch.randn(M, generator=g, dtype=torch.float64)
    corr = torch.corrcoef(torch.stack([x_t, x_s]))[0, 1]
    print(f"{name:<26}{x_s.mean():>8.3f}{x_s.var():>10.3f}{corr:>16.3f}")

# %% [markdown]
# ## 2. The DDIM update (eq. 12), written out
#
# At sampling time $x_0$ is unknown. DDIM replaces it in eq. 7 by the model's guess, the
# **predicted $x_0$**
#
# $$\hat x_0 = f_\theta(x_t) = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}
# \qquad \text{(DDIM eq. 9; DDPM eq. 15)},$$
#
# and since $\frac{x_t - \sqrt{\bar\alpha_t}\hat x_0}{\sqrt{1-\bar\alpha_t}} = \varepsilon_\theta$, eq. 7
# becomes the update
#
# $$x_{t-1} = \underbrace{\sqrt{\bar\alpha_{t-1}}\,\hat x_0}_{\text{predicted } x_0}
# + \underbrace{\sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\;\varepsilon_\theta(x_t, t)}_{\text{direction pointing to } x_t}
# + \underbrace{\sigma_t\, z}_{\text{random noise}}, \qquad z \sim \mathcal N(0, I) \qquad \text{(DDIM eq. 12)}.$$
#
# Two details, both as in the package: $\hat x_0$ is **clipped** to $[-1, 1]$, the range of the
# data, and then $\varepsilon$ is re-derived from the clipped $\hat x_0$ so that the two terms stay
# consistent ($\hat x_0$ clipping as in DDPM's and improved-diffusion's samplers, the re-derived
# $\varepsilon$ as in improved-diffusion's `ddim_sample`; the DDIM authors' code does neither); and
# the last step (to "$t = -1$", $\bar\alpha = 1$) returns $\hat x_0$ with no noise.
#
# Here is the teaching version. It takes the current timestep $t$ and the one it jumps to,
# `t_prev` (the next entry of the sampler's sub-sequence, section 4), and the noise $z$ explicitly.

# %%
ddpm_teach.course.section("2. The DDIM update")
def ddim_step_by_hand(eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor, eta: float,
                      z: torch.Tensor, clip: bool = True) -> dict[str, torch.Tensor]:
    """One DDIM step (eq. 12) with σ_t(η) of eq. 16. eps, x_t, z: [B, C, H, W]. Returns the three
    terms of eq. 12, x̂_0 and their sum x_{t_prev}."""
    alpha_bar = float(schedule.alphas_cumprod[t])
    alpha_bar_prev = float(schedule.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0   # ᾱ before the first step is 1

    # predicted x_0 (eq. 9), clipped to the data range; then the ε that agrees with the clipped x̂_0
    pred_x0 = (x_t - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)
    if clip:
        pred_x0 = pred_x0.clamp(-1.0, 1.0)
        eps = (x_t - math.sqrt(alpha_bar) * pred_x0) / math.sqrt(1 - alpha_bar)

    # σ_t(η) = η √((1−ᾱ_{t−1})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1})   (eq. 16, section 3)
    sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * math.sqrt(1 - alpha_bar / alpha_bar_prev)

    terms = {
        "pred_x0": pred_x0,
        "x0 term": math.sqrt(alpha_bar_prev) * pred_x0,                                # √ᾱ_{t−1} x̂_0
        "direction": math.sqrt(max(1 - alpha_bar_prev - sigma**2, 0.0)) * eps,          # √(1−ᾱ_{t−1}−σ²) ε
        "noise term": sigma * z if t_prev >= 0 else torch.zeros_like(x_t),              # σ z, none at the last step
    }
    terms["x_prev"] = terms["x0 term"] + terms["direction"] + terms["noise term"]        # eq. 12
    return terms


# %% [markdown]
# To check it against `DDIMSampler.step` we need a real $x_t$ and the shipped model's
# $\hat\varepsilon$: noise some test images to $t = 666$ with eq. 4, and take a 10-step sampler, whose
# step at $t = 666$ jumps to $t = 555$. `DDIMSampler.step` draws $z$ from the `generator` it is
# given, so the hand version gets $z$ from a generator seeded the same way.

# %%
sampler_10 = DDIMSampler(schedule, steps=10)
print("10-step sub-sequence:", sampler_10.timesteps.tolist())
t, t_prev = 666, sampler_10.prev_timestep(666)
print(f"the step at t = {t} goes to t = {t_prev}")

x_t = q_sample(schedule, x0_real, t, torch.randn(x0_real.shape, generator=generator(2)))   # eq. 4
eps_model = predict_eps(x_t, t)                                                              # ε̂ [N_SHOW, 1, 28, 28]

for eta in (0.0, 0.5, 1.0):
    by_package = DDIMSampler(schedule, steps=10, eta=eta).step(eps_model, t, x_t, generator=generator(3))
    by_hand = ddim_step_by_hand(eps_model, t, t_prev, x_t, eta, z=torch.randn(x_t.shape, generator=generator(3)))
    torch.testing.assert_close(by_hand["x_prev"], by_package.prev_sample)
    torch.testing.assert_close(by_hand["pred_x0"], by_package.pred_x0)
    print(f"η = {eta}: ddim_step_by_hand matches DDIMSampler.step (prev_sample and pred_x0)")

# the last step (t = 0 → "t = −1") returns x̂_0 itself, with no noise even for η = 1
x_0_noisy = q_sample(schedule, x0_real, 0, torch.randn(x0_real.shape, generator=generator(4)))
eps_last = predict_eps(x_0_noisy, 0)
last = DDIMSampler(schedule, steps=10, eta=1.0).step(eps_last, 0, x_0_noisy, generator=generator(5))
torch.testing.assert_close(ddim_step_by_hand(eps_last, 0, -1, x_0_noisy, 1.0, torch.zeros_like(x_0_noisy))["x_prev"],
                           last.prev_sample)
torch.testing.assert_close(last.prev_sample, last.pred_x0)
print("last step: matches, and returns x̂_0 without noise")

# %% [markdown]
# From here on the notebook uses the package. The three terms of eq. 12 as pictures, for the step
# $666 \to 555$ with $\eta = 1$ (terms outside $[-1, 1]$ are shown clipped; `ddpm_teach.plotting.plot_ddim_terms`
# draws them). In most rows the
# predicted $x_0$ is already a blurry garment (shoes, a T-shirt, trousers); in the last two it is
# still a faint, shapeless blob. The direction term carries the part of the current noise that
# the step keeps, and the noise term is fresh.

# %%
terms = ddim_step_by_hand(eps_model, t, t_prev, x_t, 1.0, z=torch.randn(x_t.shape, generator=generator(3)))
plot_ddim_terms(x_t=x_t, pred_x0=terms["pred_x0"], x0_term=terms["x0 term"], direction=terms["direction"],
                noise_term=terms["noise term"], x_prev=terms["x_prev"], t=t, t_prev=t_prev, eta=1.0)
plt.show()

# %% [markdown]
# ## 3. η: how much fresh noise
#
# Each choice of $\sigma$ gives a different sampler from the same model. DDIM (§5, eq. 16)
# parametrises them with one number $\eta \ge 0$:
#
# $$\sigma_{\tau_i}(\eta) = \eta\,\sqrt{\frac{1-\bar\alpha_{\tau_{i-1}}}{1-\bar\alpha_{\tau_i}}}\;
# \sqrt{1-\frac{\bar\alpha_{\tau_i}}{\bar\alpha_{\tau_{i-1}}}} \qquad \text{(DDIM eq. 16)},$$
#
# where $\tau_i \to \tau_{i-1}$ is the jump the step makes (section 4; with all $T$ steps it is
# $t \to t-1$), and $\tau_0$ stands for "$t = -1$", with $\bar\alpha_{\tau_0} = 1$.
#
# * $\eta = 0$: $\sigma = 0$, no fresh noise. Given $x_T$ the whole chain is **deterministic**:
#   this is DDIM proper, an "implicit" model like a GAN's generator.
# * $\eta = 1$ and all $T$ steps: $\sigma_t^2 = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t =
#   \tilde\beta_t$, DDPM's posterior variance (DDPM eq. 7), and eq. 12 becomes DDPM's ancestral step
#   with $\sigma_t^2 = \tilde\beta_t$ (section 3.1 below).
# * In between, $\eta$ interpolates: some of the current noise direction is kept, some replaced.
#
# The same formula over a 10-step sub-sequence: a longer jump gets a larger $\sigma$ (the numbers
# are schedule maths, the same on every machine).

# %%
ddpm_teach.course.section("3. η")
print(f"{'step':>12}{'σ(η=1)':>9}{'√β̃_t':>8}{'√(1−ᾱ_prev)':>13}   (10 uniform steps, linear schedule)")
timesteps = sampler_10.timesteps.tolist()
for t_now, t_next in zip(timesteps, timesteps[1:] + [-1]):
    alpha_bar, alpha_bar_prev = float(schedule.alphas_cumprod[t_now]), (float(schedule.alphas_cumprod[t_next]) if t_next >= 0 else 1.0)
    sigma_1 = math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev))
    print(f"{f'{t_now} → {t_next}':>12}{sigma_1:>9.4f}{schedule.posterior_variance[t_now].sqrt():>8.4f}"
          f"{math.sqrt(1 - alpha_bar_prev):>13.4f}")

# %% [markdown]
# The left panel draws $\sigma(\eta)$ along a 50-step sub-sequence for several $\eta$, under the
# ceiling $\sqrt{1-\bar\alpha_{\tau_{i-1}}}$ (all of $x_{\tau_{i-1}}$'s noise fresh, nothing kept
# from $x_{\tau_i}$). The right panel shows $\sigma(\eta = 1)$ for 10, 50 and 1000 steps; at 1000
# steps it is DDPM's $\sqrt{\tilde\beta_t}$. The fewer the steps, the larger each jump, and the more
# noise a stochastic sampler injects per step, with one exception: the last real jump, to $t = 0$.
# There $\sigma$ is capped by the ceiling, $\sqrt{1-\bar\alpha_0} = \sqrt{\beta_0} = 0.01$, which is
# small at the end of sampling, so the last visible points of the 10- and 50-step curves (at
# $t = 111$ and $t = 20$) dip under the DDPM line at the right of the panel (row `111 → 0` of the
# table above).
#
# In that table, the $\sqrt{\tilde\beta_t}$ column is DDPM's one-step posterior standard deviation,
# `schedule.posterior_variance[t].sqrt()` at the step's starting $t$: the noise DDPM with all 1000
# steps would add at that $t$, for the short step $t \to t-1$. Compare it with the $\sigma(\eta=1)$
# column to see how much more noise a long jump injects; the last column is the ceiling.

# %%
def sigmas(sampler: DDIMSampler, eta: float) -> tuple[list[int], list[float], list[float]]:
    """Timesteps τ_i, σ_{τ_i}(η) of eq. 16, and the ceiling √(1 − ᾱ_{τ_{i−1}}) along a sampler's sub-sequence."""
    ts, out, ceiling = sampler.timesteps.tolist(), [], []
    for t_now in ts:
        t_next = sampler.prev_timestep(t_now)
        ab, ab_prev = float(schedule.alphas_cumprod[t_now]), (float(schedule.alphas_cumprod[t_next]) if t_next >= 0 else 1.0)
        out.append(eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)))
        ceiling.append(math.sqrt(1 - ab_prev))
    return ts, out, ceiling


fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sampler_50 = DDIMSampler(schedule, steps=50)
for eta in (0.0, 0.25, 0.5, 0.75, 1.0):
    ts, sig, ceiling = sigmas(sampler_50, eta)
    axes[0].plot(ts, sig, "o-", markersize=2.5, label=f"η = {eta}")
axes[0].plot(ts, ceiling, "k--", linewidth=1, label="ceiling √(1 − ᾱ_prev)")
axes[0].set_title("σ_τi(η) along 50 uniform steps (eq. 16)")
for steps in (10, 50, 1000):
    ts, sig, _ = sigmas(DDIMSampler(schedule, steps=steps), 1.0)
    axes[1].plot(ts, sig, "o-" if steps < 1000 else "-", markersize=3, label=f"{steps} steps")
axes[1].plot(range(schedule.T), schedule.posterior_variance.sqrt().numpy(), "k:", linewidth=1.5,
             label="√β̃_t (DDPM)")
axes[1].set_yscale("log")
axes[1].set_title("σ(η = 1): longer jumps, more noise")
for ax in axes:
    ax.set_xlabel("t (0-based; sampling runs left to right)")
    ax.set_ylabel("σ")
    ax.invert_xaxis()
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# With 1000 steps the $\eta = 1$ curve lies on $\sqrt{\tilde\beta_t}$. At the very last step ($t = 0$)
# both are 0 ($\tilde\beta_0 = 0$, and $\bar\alpha_{-1} = 1$ makes $\sigma = 0$), so that point is off
# the log axis: DDPM adds no noise there and neither does the package's DDIM.
#
# ### 3.1 η = 1 over all T steps is DDPM
#
# Substituting $\sigma_t^2 = \tilde\beta_t$ into eq. 12 and writing
# $\hat\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}$ (using
# $1-\bar\alpha_{t-1}-\tilde\beta_t = \alpha_t(1-\bar\alpha_{t-1})^2/(1-\bar\alpha_t)$) gives DDPM's
# posterior mean $\tilde\mu_t(x_t, \hat x_0)$ (DDPM eq. 7) plus $\sqrt{\tilde\beta_t}\,z$: one DDIM
# step with $\eta = 1$ and `steps=T` is one DDPM step with `variance_type="fixed_small"`. Both
# samplers take $z$ from their `generator`, so with equally seeded generators they should agree
# to float32 rounding. One step at several $t$, each on real noised test images and the shipped
# model's $\hat\varepsilon$:

# %%
# NBVAL_IGNORE_OUTPUT
# (the differences are float32 rounding: their last digits vary between machines; the next cell checks them)
ddim_all_steps = DDIMSampler(schedule, steps=schedule.T, eta=1.0)
ddim_eta0 = DDIMSampler(schedule, steps=schedule.T, eta=0.0)
ddpm = DDPMSampler(schedule, variance_type="fixed_small")
max_diffs = {}
print(f"{'t':>5}{'max |DDIM(η=1) − DDPM|':>25}{'max |DDIM(η=0) − DDPM|':>25}")
for t_now in (999, 666, 333, 100, 1, 0):
    x_now = q_sample(schedule, x0_real, t_now, torch.randn(x0_real.shape, generator=generator(t_now)))
    eps_now = predict_eps(x_now, t_now)
    ddpm_step = ddpm.step(eps_now, t_now, x_now, generator=generator(7))
    eta1_step = ddim_all_steps.step(eps_now, t_now, x_now, generator=generator(7))
    eta0_step = ddim_eta0.step(eps_now, t_now, x_now, generator=generator(7))
    max_diffs[t_now] = (eta1_step.prev_sample - ddpm_step.prev_sample).abs().max().item()
    print(f"{t_now:>5}{max_diffs[t_now]:>25.2e}{(eta0_step.prev_sample - ddpm_step.prev_sample).abs().max().item():>25.3f}")

# %%
print(f"DDIM(η=1, steps=T) equals DDPM(σ² = β̃) at every t tried, to 1e-5: {max(max_diffs.values()) < 1e-5}")

# the same holds on a sub-sequence: DDPMSampler(steps=S) respaces the process over τ (Improved DDPM §4),
# and σ(η=1) of eq. 16 is that respaced process's √β̃'
ddpm_50, ddim_50 = DDPMSampler(schedule, steps=50), DDIMSampler(schedule, steps=50, eta=1.0)
t_now = int(ddim_50.timesteps[10])
x_now = q_sample(schedule, x0_real, t_now, torch.randn(x0_real.shape, generator=generator(8)))
eps_now = predict_eps(x_now, t_now)
torch.testing.assert_close(ddim_50.step(eps_now, t_now, x_now, generator=generator(9)).prev_sample,
                           ddpm_50.step(eps_now, t_now, x_now, generator=generator(9)).prev_sample)
print(f"and DDIM(η=1, steps=50) equals the respaced DDPM(steps=50) at t = {t_now} (assert_close passed)")

# %% [markdown]
# With $\eta = 0$ the step lands elsewhere: it keeps all of the current noise direction instead of
# drawing new noise, a different (deterministic) process with the same marginals.
#
# ## 4. Sub-sequences τ and the spacing options
#
# Section 1 showed that eq. 7 can jump from any $t$ to any earlier $s$. DDIM §4.2 uses this for
# speed: define the process only on an increasing sub-sequence $\tau = (\tau_1, \dots, \tau_S)$ of
# $[0, T)$. Its marginals are still $q(x_{\tau_i} \mid x_0)$, so the model trained at every $t$ serves
# it, and sampling takes $S$ model calls instead of $T$. Which $S$ timesteps to keep is a choice;
# `DDIMSampler(..., spacing=...)` offers four (the same sub-sequences are available to
# `DDPMSampler(steps=...)`):
#
# | spacing | rule | from |
# |---|---|---|
# | `uniform` | `linspace(0, T−1, S)` rounded: both ends included | improved-diffusion; the default here |
# | `leading` | $0, k, 2k, \dots$ with $k = \lfloor T/S \rfloor$ | DDIM's "linear" $\tau_i = \lfloor c\,i \rfloor$ (App. D.2); diffusers' default |
# | `trailing` | $T-1, T-1-k, \dots$ counted down from the end | Lin et al. 2024, Table 2 |
# | `quadratic` | $\lfloor (i\sqrt{0.8T}/(S-1))^2 \rfloor$: dense near the data | DDIM App. D.2 (used for CIFAR-10) |
#
# For `steps=10` (the sampler visits them left to right):

# %%
ddpm_teach.course.section("4. Sub-sequences τ")
print(f"{'spacing':<10} timesteps (descending)                          first √ᾱ   last")
for spacing in ("uniform", "leading", "trailing", "quadratic"):
    ts = DDIMSampler(schedule, steps=10, spacing=spacing).timesteps
    print(f"{spacing:<10} {str(ts.tolist()):<48}{schedule.sqrt_alphas_cumprod[ts[0]]:>9.4f}{int(ts[-1]):>7}")

# %% [markdown]
# Two things to notice:
#
# * **Where it starts.** Sampling starts from $x_T \sim \mathcal N(0, I)$, pure noise. `uniform` and
#   `trailing` feed it to the model as $t = 999$, where $\sqrt{\bar\alpha_t} = 0.006$: almost right.
#   `leading` starts at $t = 900$ and `quadratic` at $t = 800$, telling the model that pure noise
#   still holds 1.6% or 3.9% of an image. With this linear schedule that mismatch is small; with
#   schedules whose last $\bar\alpha$ is larger it costs quality (Lin et al. 2024,
#   [arXiv:2305.08891](https://arxiv.org/abs/2305.08891)).
# * **Where it ends.** All but `trailing` end at $t = 0$; `trailing` takes its last step from
#   $t = 99$ straight to $\hat x_0$, so its final jump is long.

# %%
fig, ax = plt.subplots(figsize=(10, 2.8))
spacings = ("uniform", "leading", "trailing", "quadratic")
for row, spacing in enumerate(spacings):
    ts = DDIMSampler(schedule, steps=10, spacing=spacing).timesteps.numpy()
    ax.plot(ts, [row] * len(ts), "|", markersize=16, markeredgewidth=2, color=f"C{row}")
ax.set_yticks(range(len(spacings)), spacings)
ax.set_ylim(-0.6, len(spacings) - 0.4)
ax.invert_yaxis()
ax.set_xlabel("t (0-based)")
ax.set_xlim(-10, schedule.T + 10)
twin = ax.twinx()
twin.plot(range(schedule.T), schedule.sqrt_alphas_cumprod.numpy(), color="gray", alpha=0.5)
twin.set_ylabel("√ᾱ_t (gray)")
ax.set_title("10 timesteps from each spacing, over √ᾱ_t of the linear schedule")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Determinism
#
# With $\eta = 0$, eq. 12 has no random term, so the image is a **function of $x_T$** alone. In
# `ddpm_teach.samplers.sample` the `generator` draws $x_T$ (unless `x_T=` is given) and every
# step's $z$; with `x_T=` given and $\eta = 0$ it draws nothing at all. So the same $x_T$ with
# different generators gives bit-identical images at $\eta = 0$, and different images at
# $\eta > 0$:

# %%
ddpm_teach.course.section("5. Determinism")
x_T = torch.randn(N_SHOW, 1, 28, 28, generator=generator(10))        # one fixed x_T for this section
for eta in (0.0, 0.5):
    sampler = DDIMSampler(schedule, steps=10, eta=eta)
    first = sample(model, sampler, x_T=x_T, generator=generator(1), progress=False)
    second = sample(model, sampler, x_T=x_T, generator=generator(2), progress=False)
    print(f"η = {eta}: same x_T, generators seeded 1 and 2 → identical images: {torch.equal(first, second)}")

# %% [markdown]
# The deterministic sampler is also consistent *across step counts*. With $\eta = 0$, eq. 12 is an
# Euler step of an ordinary differential equation (DDIM §4.3, eqs. 13-14), and more steps only
# solve the same ODE more finely. So 10, 20, 50 and 100 steps from the same $x_T$ should give
# nearly the same garment, sharper or smoother but recognisably the same. With $\eta = 1$ every
# step count draws different noise along the way and ends somewhere else.

# %%
# NBVAL_IGNORE_OUTPUT
# (the differences between images depend on the checkpoint; the figure is the point)
by_steps = {}
with timed(f"sampling {N_SHOW} images at {len(FIGURE_STEPS)} step counts for η = 0 and 1"):
    for eta in (0.0, 1.0):
        for steps in FIGURE_STEPS:
            by_steps[eta, steps] = sample(model, DDIMSampler(schedule, steps=steps, eta=eta), x_T=x_T,
                                          generator=generator(11), progress=False).cpu()

most = FIGURE_STEPS[-1]
print(f"mean |pixel difference| to the {most}-step image of the same x_T (pixels in [-1, 1]):")
for eta in (0.0, 1.0):
    print(f"  η = {eta}: " + ", ".join(f"{steps} steps {(by_steps[eta, steps] - by_steps[eta, most]).abs().mean():.3f}"
                                       for steps in FIGURE_STEPS[:-1]))
other_x_T = sample(model, DDIMSampler(schedule, steps=most), x_T=torch.randn(x_T.shape, generator=generator(12)),
                   progress=False).cpu()
print(f"  for scale, {most}-step η = 0 images from a *different* x_T: {(other_x_T - by_steps[0.0, most]).abs().mean():.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(2 * (0.75 * N_SHOW + 1.2), 0.8 * len(FIGURE_STEPS) + 0.9))
for ax, eta in zip(axes, (0.0, 1.0)):
    rows = torch.cat([by_steps[eta, steps] for steps in FIGURE_STEPS])     # (4·N_SHOW, 1, 28, 28)
    show_images(rows, nrow=N_SHOW, ax=ax)
    ax.set_yticks([(28 + 2) * (i + 0.5) + 1 for i in range(len(FIGURE_STEPS))],
                  [f"{steps} steps" for steps in FIGURE_STEPS])
    ax.tick_params(left=False)
    ax.set_title(f"η = {eta}: {'deterministic' if eta == 0 else 'stochastic'}")
fig.suptitle(f"The same x_T in every row; DDIM with {', '.join(map(str, FIGURE_STEPS))} steps", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# In the stored full-size run the determinism holds: the $\eta = 0$ images at 10, 20 and 50 steps
# differ from the 100-step image of the same $x_T$ by 0.084, 0.049 and 0.016 per pixel on average,
# against 0.593 for a different $x_T$, while $\eta = 1$ gives 0.42 to 0.49, most of the way to the
# different-$x_T$ figure. In the picture, 7 of the 8 $\eta = 0$ columns show the same item in all
# four rows, only a little sharper with more steps; the eighth, a short-sleeved top at 10 and 20
# steps, becomes a narrow dress at 50 and 100 (few steps solve the ODE coarsely, and now and then
# that lands on a different image). The $\eta = 1$ columns change item from row to row. Every
# image in the figure is a recognisable item, but two of the $\eta = 0$ ones (a bag and a top)
# carry blotchy, high-contrast patches at every step count: a flaw of the small, briefly trained model
# (15 CPU minutes, `checkpoints/README.md`) that the deterministic sampler reproduces exactly from
# the same $x_T$. Section 7 measures what $\eta$ and the step count do to quality.
#
# ## 6. Latent interpolation
#
# Because $\eta = 0$ makes the image a smooth function of $x_T$, moving $x_T$ a little moves the
# image a little, and a path between two noises $x_T^{(0)}$ and $x_T^{(1)}$ gives a morph between
# two images (DDIM §5.3). Which path? A straight line $(1-\alpha)x_T^{(0)} + \alpha x_T^{(1)}$ is the
# obvious one, but it leaves the region where Gaussian noise lives: two independent noises in
# $d = 784$ dimensions are almost orthogonal, each of norm $\approx \sqrt d = 28$, so the midpoint has
# norm $\approx 28/\sqrt2 \approx 19.8$. No $x_T$ the model saw in training was that short. DDIM
# therefore uses **spherical linear interpolation** (slerp, Shoemake 1985):
#
# $$x_T^{(\alpha)} = \frac{\sin((1-\alpha)\theta)}{\sin\theta}\,x_T^{(0)} + \frac{\sin(\alpha\theta)}{\sin\theta}\,x_T^{(1)},
# \qquad \theta = \arccos\frac{\langle x_T^{(0)}, x_T^{(1)}\rangle}{\lVert x_T^{(0)}\rVert\,\lVert x_T^{(1)}\rVert},$$
#
# which walks along the great circle between them and keeps the norm (exactly, when the
# endpoints have equal norm). The package has no slerp; here it is, with its defining properties
# checked.

# %%
ddpm_teach.course.section("6. Latent interpolation")
def slerp(z0: torch.Tensor, z1: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two noises z0, z1 [C, H, W]; alphas [K] in [0, 1]. Returns [K, C, H, W]."""
    cos_theta = (z0 * z1).sum() / (z0.norm() * z1.norm())
    theta = torch.arccos(cos_theta.clamp(-1.0, 1.0))                       # angle between z0 and z1 (a scalar)
    alphas = torch.as_tensor(alphas, dtype=z0.dtype).reshape(-1, *[1] * z0.ndim)   # (K, 1, 1, 1)
    return (torch.sin((1 - alphas) * theta) * z0 + torch.sin(alphas * theta) * z1) / torch.sin(theta)


def lerp(z0: torch.Tensor, z1: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Straight-line interpolation, for comparison. Returns [K, C, H, W]."""
    alphas = torch.as_tensor(alphas, dtype=z0.dtype).reshape(-1, *[1] * z0.ndim)
    return (1 - alphas) * z0 + alphas * z1


alphas = torch.linspace(0, 1, 9)
pairs = torch.randn(3, 2, 1, 28, 28, generator=generator(13))            # 3 pairs of noises (x_T^(0), x_T^(1))
z0, z1 = pairs[0]
path_slerp, path_lerp = slerp(z0, z1, alphas), lerp(z0, z1, alphas)
torch.testing.assert_close(path_slerp[0], z0)
torch.testing.assert_close(path_slerp[-1], z1)
torch.testing.assert_close(slerp(z0, 2 * z0 + 0.01 * z1, torch.tensor([0.0]))[0], z0)   # nearly parallel: still fine
print(f"angle between the two noises: {math.degrees(torch.arccos((z0 * z1).sum() / (z0.norm() * z1.norm()))):.1f}°")
print("α:            " + " ".join(f"{a:>5.3f}" for a in alphas.tolist()))
print("‖slerp‖:      " + " ".join(f"{n:>5.1f}" for n in path_slerp.flatten(1).norm(dim=1).tolist()))
print("‖lerp‖:       " + " ".join(f"{n:>5.1f}" for n in path_lerp.flatten(1).norm(dim=1).tolist()))

# %% [markdown]
# Now decode every point of the path with deterministic DDIM ($\eta = 0$): three slerp rows, and
# under them the first pair again with lerp. With a well-trained model (DDIM §5.3) the slerp rows
# morph smoothly from one image to the other with plausible images in between, and the lerp row's
# middle images, decoded from too-short noise, come out faint or washed out.
#
# The stored run shows this for the most part. Every image on the three slerp rows is a garment.
# The third row morphs smoothly from trousers through a dress into a wide top. The second goes
# from trousers through a short-sleeved dress into a long-sleeved top, and the first from a
# T-shirt into an ankle boot, with one abrupt change between $\alpha = 0.375$ (a streaky T-shirt)
# and $0.5$ (a mottled boot) instead of a gradual one. The T-shirt and the boot of the first row
# and the long-sleeved top of the second carry the blotchy, high-contrast patches of section 5.
# The lerp row's middle images ($\alpha = 0.125$ to $0.875$) are smooth, flat tops and boots
# with no detail: washed out, as expected from noise of norm 19.9 to 25.4 instead of about 28.7
# (the printout above), and with none of the texture of the endpoints.

# %%
starts = torch.cat([slerp(a, b, alphas) for a, b in pairs] + [path_lerp])   # (4·9, 1, 28, 28)
with timed(f"decoding {len(starts)} interpolated noises with DDIM (η = 0)"):
    morphs = sample(model, DDIMSampler(schedule, steps=INTERP_STEPS, eta=0.0), x_T=starts, progress=False).cpu()

fig, ax = plt.subplots(figsize=(9, 4.6))
show_images(morphs, nrow=len(alphas), ax=ax)
ax.set_yticks([(28 + 2) * (i + 0.5) + 1 for i in range(4)], ["slerp", "slerp", "slerp", "lerp (pair 1)"])
ax.set_xticks([(28 + 2) * (i + 0.5) + 1 for i in range(len(alphas))], [f"α={a:g}" for a in alphas.tolist()],
              fontsize=8)
ax.tick_params(length=0)
ax.set_title(f"DDIM (η = 0, {INTERP_STEPS} steps) decoding x_T^(α) along the path between two noises")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 7. Quality against the number of steps: a measured table
#
# How much quality do fewer steps cost, and does $\eta$ matter? DDIM's Table 1 answered this for
# CIFAR-10 and CelebA; here is the same experiment, small, on the shipped Fashion-MNIST model:
# DDIM with each step count and $\eta \in \{0, 0.5, 1\}$, each cell `N_FID` samples from **the same**
# $x_T$ (common random numbers make the cells easier to compare), scored with the course's
# classifier-FID (`ddpm_teach.evaluation`, notebook 05): the Fréchet distance between Gaussians
# fitted to a Fashion-MNIST classifier's features of the samples and of the 10,000 test images.
#
# Read it with its **floor**: `N_FID` real *training* images score a non-zero FID against the test
# set too, because a covariance estimated from few images is noisy. That real-vs-real number at
# the same N is the best any sampler can get here. Loading the evaluator needs the test set's
# classifier features: they are computed on the first run and cached after it, so loading is quick.

# %%
ddpm_teach.course.section("7. Quality against steps")
# NBVAL_IGNORE_OUTPUT
with timed("loading the evaluator (classifier + test-set features)"):
    evaluator = Evaluator.load(device=DEVICE)
print(f"N = {N_FID} samples per cell; step counts {TABLE_STEPS}; η in {TABLE_ETAS}")
print(f"real-vs-real floor at N = {N_FID}: {evaluator.fid_floor(N_FID):.2f}")

# %%
# NBVAL_IGNORE_OUTPUT
table_x_T = torch.randn(N_FID, 1, 28, 28, generator=generator(14))
results = {}
for steps in TABLE_STEPS:
    for eta in TABLE_ETAS:
        start, start_cpu = time.perf_counter(), time.process_time()
        images = sample(model, DDIMSampler(schedule, steps=steps, eta=eta), x_T=table_x_T,
                        generator=generator(15), progress=False).cpu()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        scores = evaluator.score(images)
        results[steps, eta] = {"fid": scores["fid"], "floor": scores["fid_floor"],
                               "ms_per_sample": 1000 * seconds / N_FID, "cpu_ms_per_sample": 1000 * cpu_seconds / N_FID,
                               "images": images[:N_SHOW]}
        print(f"steps={steps:>3}  η={eta:.1f}  {Evaluator.format_scores(scores)}  "
              f"(sampling: {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU time of this process)")

# %%
# NBVAL_IGNORE_OUTPUT
floor = results[TABLE_STEPS[0], TABLE_ETAS[0]]["floor"]
print(f"classifier-FID of DDIM samples (lower is better), N = {N_FID} per cell, "
      f"real-vs-real floor at N = {N_FID}: {floor:.2f}")
print(f"{'steps':>6}" + "".join(f"{f'η = {eta}':>10}" for eta in TABLE_ETAS)
      + f"{'wall ms/sample':>16}{'CPU ms/sample':>15}  ({ddpm_teach.course.machine()})")
for steps in TABLE_STEPS:
    wall_ms = sum(results[steps, eta]["ms_per_sample"] for eta in TABLE_ETAS) / len(TABLE_ETAS)
    cpu_ms = sum(results[steps, eta]["cpu_ms_per_sample"] for eta in TABLE_ETAS) / len(TABLE_ETAS)
    print(f"{steps:>6}" + "".join(f"{results[steps, eta]['fid']:>10.2f}" for eta in TABLE_ETAS)
          + f"{wall_ms:>16.1f}{cpu_ms:>15.1f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
for i, eta in enumerate(TABLE_ETAS):
    axes[0].plot(TABLE_STEPS, [results[steps, eta]["fid"] for steps in TABLE_STEPS], "o-", color=f"C{i}",
                 label=f"η = {eta}")
axes[0].axhline(floor, color="k", linestyle="--", linewidth=1, label=f"real-vs-real floor (N = {N_FID})")
axes[0].set_xscale("log")
axes[0].set_xticks(TABLE_STEPS, [str(s) for s in TABLE_STEPS])
axes[0].xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
axes[0].set_xlabel("DDIM steps (model calls per sample)")
axes[0].set_ylabel("classifier-FID")
axes[0].set_title(f"Quality against steps (N = {N_FID} per point)")
axes[0].grid(True, alpha=0.3)
axes[0].legend(fontsize=8)

corner_cells = [(TABLE_STEPS[0], TABLE_ETAS[0]), (TABLE_STEPS[0], TABLE_ETAS[-1]),
                (TABLE_STEPS[-1], TABLE_ETAS[0]), (TABLE_STEPS[-1], TABLE_ETAS[-1])]
real_images, _ = test_data.batch(torch.randperm(len(test_data), generator=generator(16))[:N_SHOW])   # (N_SHOW, 1, 28, 28)
show_images(torch.cat([results[cell]["images"] for cell in corner_cells] + [real_images]), nrow=N_SHOW, ax=axes[1])
axes[1].set_yticks([(28 + 2) * (i + 0.5) + 1 for i in range(len(corner_cells) + 1)],
                   [f"{steps} steps, η = {eta}" for steps, eta in corner_cells] + ["real test images"], fontsize=8)
axes[1].tick_params(length=0)
axes[1].set_title("samples from the same x_T, and real images")
fig.tight_layout()
plt.show()

# %% [markdown]
# The bottom row of the right panel is not generated: it holds real test images, drawn at random,
# the yardstick for the four rows of samples above it. Real garments have flat black backgrounds
# and clean outlines; look at how far each row of samples is from that, and whether more steps
# or a different η close the gap.
#
# How to read the table (the numbers above are measured on this run; they change with the
# checkpoint and with N). The stored full-size run is quoted below. First, how large is the noise?
# This notebook reports it through the floor: 100 real images already score 2.60, so 100 samples
# pin a FID down only roughly. Notebook 08 puts bootstrap error bars on the same score at a similar
# N (96) and finds about ±1 point per cell, so the difference of two cells scatters by about
# 1.4 points. Below, a difference of less than about 2 points between two cells counts as
# unresolved, and one of 3 points or more (more than the floor itself) as resolved, just.
#
# * **Rows: cost.** Each step is one UNet call, so the time per sample grows with the number of
#   steps (DDPM needs 1000). The table gives the wall time, averaged over the three η, and the CPU time
#   of this process: on a machine shared with other jobs the wall time can jump while the CPU
#   time stays close to the real cost of the work. Read the last two columns of the printout: the
#   wall and the CPU milliseconds per sample at each step count. On an idle machine both grow about
#   linearly with the steps (divide by the step count to get the cost of one step), and the CPU time
#   is up to about twice the wall time, as two threads share the work. A row whose wall time is out
#   of line with the others was slowed by another job on the machine.
# * **Rows: quality.** In the paper FID falls as the step count grows, for every η. Here it does
#   for η = 1 (6.93, 5.97, 3.61, 3.54 at 10, 20, 50, 100 steps: 3.4 points in all, a resolved
#   fall, flat from 50 to 100) and, in smaller steps, for η = 0.5 (5.25, 4.81, 4.24, 3.68).
#   η = 0 improves from 6.60 at 10 steps to 5.14 at 20 and then stays flat (4.77, 5.04; the rise
#   from 50 to 100 is noise, and those two cells hold nearly the same images: at η = 0 the 50- and
#   100-step images of one $x_T$ differ by 0.016 per pixel, section 5). That plateau is what the
#   ODE view predicts: once the steps solve the ODE finely enough, more steps no longer change the
#   images, and what is left is the model's own error.
# * **Columns: η.** DDIM's central finding (their Table 1, on well-trained CIFAR-10 and CelebA
#   models) is that at few steps the deterministic sampler ($\eta = 0$) beats the stochastic ones,
#   and the gap closes as the step count grows. The reason is in the right panel of the σ figure:
#   with few steps each jump is long, and $\eta = 1$ injects a lot of fresh noise per step that the
#   few remaining steps cannot remove. **This run shows that pattern only faintly at few steps,
#   and turns it round at many.** At 10 and 20 steps η = 1 is the worst column (6.93 and 5.97), as
#   in the paper, but only 0.3 and 0.8 points behind η = 0 (6.60 and 5.14), and the best column is
#   η = 0.5 (5.25 and 4.81), not η = 0. None of these differences is more than 1.7 points, so
#   all are within the noise, and far smaller than the paper's: on CIFAR-10 at 10 steps its η = 1 FID is about three times its
#   η = 0 FID. At 50 and 100 steps the order is reversed: η = 1 is the best column (3.61 and 3.54),
#   η = 0 the worst (4.77 and 5.04), with η = 0.5 between them both times (4.24 and 3.68). That gap,
#   1.2 and 1.5 points, points the same way twice but is not resolved at N = 100 (and the two
#   η = 0 cells, holding nearly the same images, are not independent measurements). If it holds
#   up at a larger N, the likely reason is the model: a small UNet trained for 15 CPU minutes
#   (3.7 epochs, `checkpoints/README.md`), whose $\hat\varepsilon$ has errors of its own.
#   $\eta = 0$ carries every error forward in the kept noise direction, while fresh noise partly
#   washes them out, and with many short steps that noise costs little (the argument Karras et
#   al. 2022, *EDM*, [arXiv:2206.00364](https://arxiv.org/abs/2206.00364) §4, make for
#   stochastic samplers). The pictures in the right panel do not separate the columns clearly.
#   The $\eta = 1$ samples at 10 steps are the softest (smooth, little detail, some faint or
#   ghostly); blotchy, high-contrast patches appear at both η (a bag and a top in both $\eta = 0$
#   rows, two boxy bags among the $\eta = 1$ samples at 100 steps). The two $\eta = 0$ rows match
#   image for image except the first (a dark shirt at 10 steps, a sneaker at 100). A larger
#   `N_FID` is needed to settle the ordering of the columns. The README's "Results" section does
#   that for this checkpoint: at N = 5000 (floor 0.03) DDIM-50 scores 2.79 at η = 0, 2.40 at
#   η = 0.5 and 2.47 at η = 1, and at 10 steps 3.95, 3.87 and 5.27. So the reversal holds up at
#   50 steps (100 steps is not yet measured at that N), and at few steps η = 1 is clearly the
#   worst, as in the paper.
# * **The floor.** No sampler is expected to score below the floor, and differences between
#   cells smaller than the FID's own sampling spread at this N are noise; with N in the low
#   hundreds, trust the trends more than any single decimal. Here every cell lies above the
#   floor (3.54 to 6.93 against 2.60). The best cells, η = 1 at 50 and 100 steps, lie within about
#   1 point of it, about the size of the noise, so at this N they cannot be ranked against each
#   other or pinned much closer to the floor. Raising `N_FID` (and time) tightens every number,
#   floor included.
#
# ## 8. Exercises
#
# **Exercise 1.** Take `DDIMSampler(schedule, steps=20, eta=0.5)` with the linear schedule,
# $T = 1000$, uniform spacing (the shipped model's). What $\sigma$ does its step at $t = 421$ use?
# (First find where that step goes.) Give four significant digits and check with
# `ddpm_teach.exercises.nb06.check_sigma(your_answer)`.
#
# **Exercise 2.** Without running the sampler: which timesteps, in the order the sampler visits
# them, does `DDIMSampler(schedule, steps=5, spacing="uniform")` use for $T = 1000$? Check a list
# with `ddpm_teach.exercises.nb06.check_timesteps(your_answer)`. (Careful with rounding.)
#
# Try them in the next cell; a worked solution to each is in **Solutions** at the end of the notebook
# (hidden; click to show).

# %%
ddpm_teach.course.section("8. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb06.check_sigma(...)
# ddpm_teach.exercises.nb06.check_timesteps([...])

# %% [markdown]
# ## Summary
#
# * DDPM's loss sees only the marginals $q(x_t \mid x_0)$, so the trained $\varepsilon_\theta$ fits
#   a whole family of forward processes $q_\sigma$ (DDIM eq. 7) with those marginals; they are
#   non-Markovian, and eq. 7 can jump between any two timesteps.
# * The DDIM update (eq. 12) is predicted $x_0$ + direction pointing to $x_t$ + $\sigma z$, with
#   $\hat x_0$ clipped and $\varepsilon$ re-derived from it; `DDIMSampler.step` implements it, as checked here.
# * $\sigma_{\tau_i}(\eta)$ (eq. 16): $\eta = 0$ is deterministic DDIM; $\eta = 1$ over all $T$ steps
#   *is* DDPM with $\sigma^2 = \tilde\beta_t$ (shown numerically with the shipped model), and on a
#   sub-sequence it is the respaced DDPM. Longer jumps mean larger $\sigma$.
# * A sub-sequence $\tau$ of $S$ timesteps costs $S$ model calls. `uniform` and `trailing` start at
#   $t = T-1$; `leading` and `quadratic` start lower and treat pure noise as slightly less noisy.
# * With $\eta = 0$ the image is a function of $x_T$: the same $x_T$ gives the same image whatever
#   the generator, nearly the same image at 10 or 100 steps, and slerp between two $x_T$ morphs
#   one image into another (lerp shrinks the noise and washes the middle out). With the shipped
#   checkpoint every image along the slerp paths here is a garment, though one morph switches
#   abruptly midway and some images carry blotchy patches, a flaw of the small, briefly trained model.
# * The measured table puts numbers on the trade-off between steps, $\eta$ and quality on this
#   model, always with N and the real-vs-real floor. The paper finds $\eta = 0$ best at few steps
#   and $\eta = 1$ worst, with the gap closing as the steps grow. On the shipped checkpoint (15 CPU
#   minutes, 3.7 epochs; N = 100 per cell, floor 2.60) η = 1 was indeed the worst column at 10 and
#   20 steps, but within noise of the others (6.93 against 6.60 for η = 0 at 10 steps); η = 0
#   improved up to 20 steps and then stayed flat near 5, while η = 1 improved the most (to 3.54
#   at 100 steps, a resolved 3.4-point fall); and at 50 and 100 steps η = 1 came out ahead of
#   η = 0 by 1.2 and 1.5 points, which this N cannot resolve.
#
# **Further reading.** Song et al. 2021, §4.3 and §5.4, on DDIM as an ODE and on reconstructing
# $x_T$ from an image (encoding by running eq. 12 backwards). Lu et al. 2022, *DPM-Solver*
# ([arXiv:2206.00927](https://arxiv.org/abs/2206.00927)), solves the same ODE with higher-order
# steps, for good samples in 10 to 20 calls.
#
# **Next:** notebook 07 adds a class label and classifier-free guidance.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of section 8. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# Find the next timestep of τ, then eq. 16.
exercise_sampler = DDIMSampler(schedule, steps=20, eta=0.5)
t_now = 421
t_next = exercise_sampler.prev_timestep(t_now)
alpha_bar, alpha_bar_prev = schedule.alphas_cumprod[t_now].item(), schedule.alphas_cumprod[t_next].item()
answer_1 = 0.5 * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * math.sqrt(1 - alpha_bar / alpha_bar_prev)
ddpm_teach.exercises.nb06.check_sigma(answer_1)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# linspace(0, T − 1, 5) = 0, 249.75, 499.5, 749.25, 999, rounded, descending.
answer_2 = [round(i * 999 / 4) for i in range(5)][::-1]      # Python's round: 499.5 → 500 (ties to even)
ddpm_teach.exercises.nb06.check_timesteps(answer_2)

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
# ← [05 · DDPM sampling](05_ddpm_sampling.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [07 · Classifier-free guidance →](07_guidance.ipynb)
