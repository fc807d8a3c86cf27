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
# # 05 · DDPM sampling: from noise to images
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-teach/ddpm-teach/blob/main/notebooks/05_ddpm_sampling.ipynb)
#
# ← [04 · Training](04_training.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [06 · DDIM sampling →](06_ddim_sampling.ipynb)
#
# Notebook 04 trained $\varepsilon_\theta(x_t, t)$, a network that looks at a noisy image and predicts
# the noise in it. This notebook turns that network into a **generator**: start from pure noise
# $x_T \sim \mathcal N(0, I)$ and walk the reverse chain $x_T \to x_{T-1} \to \dots \to x_0$, one
# small denoising step at a time. That walk is Algorithm 2 of DDPM (Ho et al. 2020,
# [arXiv:2006.11239](https://arxiv.org/abs/2006.11239)).
#
# **Learning goals.** By the end you can
# 1. write one step of Algorithm 2 from eq. 11 (the mean $\mu_\theta$ from $\varepsilon_\theta$) and
#    eq. 15 ($\hat x_0$), and say why no noise is added at the last step;
# 2. run the package's sampler (`ddpm_teach.samplers.DDPMSampler` and `sample`) on the shipped
#    model, and *respace* it to fewer steps (Improved DDPM §4);
# 3. explain the two fixed variances of DDPM §3.2, $\sigma_t^2 = \beta_t$ and
#    $\sigma_t^2 = \tilde\beta_t$, where they differ, and what each does to samples;
# 4. explain why $\hat x_0$ is clipped to $[-1, 1]$, and see what happens without it;
# 5. read a denoising trajectory: $x_t$ and the model's running guess $\hat x_0$ over $t$, as a
#    grid and as an animation;
# 6. score samples with the course's classifier-FID, always next to $N$ and the real-vs-real floor,
#    and read the class histogram of unconditional samples.
#
# **Runtime** (whole notebook at full size, `jupyter nbconvert --execute`, 2 threads, idle machine):
# - 2-core Intel Xeon with AMX (2026-11-22): 144 s
# - 2-core AMD EPYC, AVX-512-BF16, no AMX (2026-12-02, 12-07): 115-232 s (four runs)
# - CI size (`DDPM_TEACH_SIZE=ci`, `pytest --nbval`): about 10 s (AMD, 2026-12-07).
#   Slower with no native bf16, fewer cores or a busy machine; GPU not measured; the last cell prints this run's time per section.
# - Most of it goes into the 2 × 256 samples of §4 and the 1000-step trajectory of §2.
#
# **Size knob:** `DDPM_TEACH_SIZE` changes how many samples are drawn and scored, and over how many
# steps. The maths cells (the step checks, the variances, respacing, the exercises) print the same
# at both sizes and are checked by `pytest --nbval`; cells whose output depends on the size or on
# the trained weights are marked `# NBVAL_IGNORE_OUTPUT`.

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
import numpy as np
import torch
from IPython.display import HTML

import ddpm_teach.exercises.nb05
from ddpm_teach.checkpoint import load_diffusion_model
from ddpm_teach.course import by_size, timed
from ddpm_teach.data import load_dataset, to_model_range
from ddpm_teach.evaluation import Evaluator
from ddpm_teach.plotting import animate_trajectory, plot_trajectory, show_images
from ddpm_teach.samplers import DDPMSampler, Trajectory, sample

torch.manual_seed(0)                       # every random draw below also has its own torch.Generator
SIZE = ddpm_teach.course.notebook_size()   # "full" (default) or "ci" (pytest)

N_SCORE = by_size(full=256, ci=32)         # samples per variance choice, scored in §6
SCORE_STEPS = by_size(full=50, ci=10)      # respaced DDPM steps for those samples (§4)
TRAJECTORY_STEPS = by_size(full=1000, ci=20)   # the trajectory of §2: all T steps at full size
N_TRAJECTORY = by_size(full=8, ci=4)       # images in that trajectory
N_CLIP = by_size(full=16, ci=8)            # images in the clipping comparison (§5)


def generator(seed: int = 0) -> torch.Generator:
    """A fresh CPU generator: the same seed gives the same x_T and the same noise at every step."""
    return torch.Generator().manual_seed(seed)


# %%
# NBVAL_IGNORE_OUTPUT
print(f"size={SIZE}: N_SCORE={N_SCORE}, SCORE_STEPS={SCORE_STEPS}, TRAJECTORY_STEPS={TRAJECTORY_STEPS}, "
      f"N_TRAJECTORY={N_TRAJECTORY}, N_CLIP={N_CLIP}")

# %% [markdown]
# ## 0. The shipped model
#
# `checkpoints/fashion_mnist_ddpm.pt` is an unconditional model for Fashion-MNIST (28 × 28, gray),
# trained with notebook 04's recipe: $\varepsilon$-prediction, DDPM's linear schedule with
# $T = 1000$, EMA weights. `load_diffusion_model` rebuilds the UNet and the schedule from the
# configs stored in the file (plain data, loaded with `weights_only=True`) and returns the model in
# eval mode.
#
# **Be honest about what it is.** It is small (the cell below prints its parameter count) and was trained
# briefly: 15 minutes on a 2-core CPU (`python -m ddpm_teach train --preset cpu-fast`, notebook 04 §12). The
# `train_config` printed below says how many steps of how many images that was, and the checkpoint was saved
# at the end of them (the step printed under it): a few passes over the 60,000 training images, no more. A
# model trained on a GPU for hours makes far better samples. The pictures below are mostly recognisable
# clothes, but expect some blotches and odd shapes, and expect the scores of §6 to sit well above the real-vs-real floor. That gap is
# under-training, not a bug in the sampler: the sampler is checked against the formulas in §1 and against independent implementations in `tests/`.

# %%
ddpm_teach.course.section("0. The shipped model")
model, schedule, ckpt = load_diffusion_model(ddpm_teach.course.checkpoint_path("fashion_mnist_ddpm.pt"))
config = ckpt["train_config"]
print(model.config)
print(f"{model.num_parameters():,} parameters; {schedule}")
print(f"train_config: {config['steps']} steps of batch {config['batch_size']}, lr {config['lr']}, "
      f"warm-up {config['warmup_steps']}, EMA decay {config['ema_decay']}, schedule {config['schedule']}, T={config['T']}")

# %%
# NBVAL_IGNORE_OUTPUT
# (depends on the checkpoint file, which is retrained from time to time)
losses = ckpt["loss_history"]
print(f"checkpoint saved at step {ckpt['step']}; last training losses (ε-MSE): "
      + ", ".join(f"{float(v):.4f}" for v in list(losses)[-5:]))

# %% [markdown]
# ## 1. Algorithm 2, one step at a time
#
# The reverse process is a Markov chain of Gaussians,
# $p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(x_{t-1};\ \mu_\theta(x_t, t),\ \sigma_t^2 I\big)$ (eq. 1).
# Training (notebook 04) never fitted $\mu_\theta$ directly. It fitted $\varepsilon_\theta$, and
# DDPM chose the parametrisation that turns one into the other (eq. 11):
#
# $$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta(x_t, t)\Big) \qquad \text{(eq. 11)}.$$
#
# Where it comes from: the forward process has a Gaussian posterior
# $q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t(x_t, x_0), \tilde\beta_t I)$ with
#
# $$\tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
# \qquad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t \qquad \text{(eq. 7)}.$$
#
# We don't know $x_0$ while sampling, but the model gives an estimate of it: inverting
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ (eq. 4) with $\varepsilon_\theta$ in place of $\varepsilon$,
#
# $$\hat x_0 = \frac{1}{\sqrt{\bar\alpha_t}}\big(x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta(x_t, t)\big) \qquad \text{(eq. 15)}.$$
#
# Putting $\hat x_0$ into $\tilde\mu_t$ gives eq. 11 exactly. The algebra: since
# $\bar\alpha_t = \alpha_t\bar\alpha_{t-1}$, $\sqrt{\bar\alpha_{t-1}}/\sqrt{\bar\alpha_t} = 1/\sqrt{\alpha_t}$, so the
# $x_0$-coefficient of eq. 7 times $\hat x_0$ is $\frac{\beta_t}{\sqrt{\alpha_t}(1-\bar\alpha_t)}\big(x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta\big)$.
# The $x_t$ terms then add up to $\frac{\beta_t + \alpha_t(1-\bar\alpha_{t-1})}{\sqrt{\alpha_t}(1-\bar\alpha_t)}\,x_t = \frac{1}{\sqrt{\alpha_t}}\,x_t$
# (the numerator is $1 - \alpha_t + \alpha_t - \bar\alpha_t = 1-\bar\alpha_t$), and the $\varepsilon_\theta$ term is
# $-\frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta$: that is eq. 11. Algorithm 2 is then:
#
# > $x_T \sim \mathcal N(0, I)$; for $t = T, \dots, 1$: $z \sim \mathcal N(0, I)$ if $t > 1$, else $z = 0$;
# > $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$. Return $x_0$.
#
# Here is one step written out by hand, in the paper's symbols. (Remember the package's convention:
# timesteps are 0-based, so index `t = 0` is the paper's $t = 1$, the last step.) $\hat x_0$ is
# computed as $\sqrt{1/\bar\alpha_t}\,x_t - \sqrt{1/\bar\alpha_t - 1}\,\varepsilon_\theta$, which is
# eq. 15 rearranged: it is the form the package uses, and at $t$ near $T$, where
# $1/\sqrt{\bar\alpha_t} \approx 157$, the two forms round differently in float32.

# %%
ddpm_teach.course.section("1. Algorithm 2, one step at a time")
def ddpm_step_by_hand(schedule, eps, t: int, x_t, z, variance: str = "fixed_small", clip_x0: bool = False):
    """One step of DDPM Algorithm 2 at 0-based index t (the paper's t + 1).

    eps: ε_θ(x_t, t) [B, C, H, W]; z: standard normal noise like x_t (ignored at t = 0).
    Returns (x_{t-1}, x̂_0)."""
    beta = float(schedule.betas[t])
    alpha = 1.0 - beta
    alpha_bar = float(schedule.alphas_cumprod[t])
    alpha_bar_prev = float(schedule.alphas_cumprod_prev[t])   # ᾱ_{t−1}, and 1 at t = 0

    # x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ) / √ᾱ_t                                          (eq. 15)
    pred_x0 = math.sqrt(1.0 / alpha_bar) * x_t - math.sqrt(1.0 / alpha_bar - 1.0) * eps
    if clip_x0:
        # μ = μ̃_t(x_t, clip(x̂_0)): the posterior mean with the clipped estimate       (eq. 7)
        pred_x0 = pred_x0.clamp(-1.0, 1.0)
        mean = (math.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar)) * pred_x0 \
            + (math.sqrt(alpha) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)) * x_t
    else:
        # μ_θ = (x_t − β_t / √(1 − ᾱ_t) ε_θ) / √α_t                                     (eq. 11)
        mean = (x_t - beta / math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha)

    if t == 0:                     # the paper's t = 1: z = 0, no noise at the last step
        return mean, pred_x0
    # σ_t² = β_t ("fixed_large") or β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) β_t ("fixed_small")   (§3.2)
    variance_t = beta if variance == "fixed_large" else (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta
    return mean + math.sqrt(variance_t) * z, pred_x0


# %% [markdown]
# Now the same step from the package, `DDPMSampler(schedule).step(model_output, t, x_t, generator)`,
# for the same inputs. The noise $z$ comes from a generator with the same seed on both sides, so
# the two must agree to float32 rounding. We check several timesteps, both variances, with and
# without clipping, on the real model's $\varepsilon_\theta$. (Any $x_t$ will do to check algebra;
# we use pure noise.) `DDPMSampler.step` takes the same two routes to the mean as `ddpm_step_by_hand`:
# eq. 11 when `clip_x0=False` (`ddpm_teach.samplers.p_mean_from_eps` is eq. 11 on its own), and the
# posterior mean at the clipped $\hat x_0$ when `clip_x0=True`. Its comments number the lines of
# Algorithm 2, and `sample()` holds lines 1, 2 and 6 (draw $x_T$, the loop, return $x_0$).

# %%
x_t = torch.randn(4, 1, 28, 28, generator=generator(0))          # (4, 1, 28, 28)
checked = 0
for t in (999, 500, 100, 1, 0):
    with torch.no_grad():
        eps = model(x_t, torch.full((4,), t))                     # ε_θ(x_t, t), (4, 1, 28, 28)
    for variance in ("fixed_small", "fixed_large"):
        for clip_x0 in (False, True):
            z = torch.randn(x_t.shape, generator=generator(1))
            mine = ddpm_step_by_hand(schedule, eps, t, x_t, z, variance, clip_x0)
            sampler = DDPMSampler(schedule, variance_type=variance, clip_x0=clip_x0)
            out = sampler.step(eps, t, x_t, generator=generator(1))
            torch.testing.assert_close(out.prev_sample, mine[0])
            torch.testing.assert_close(out.pred_x0, mine[1])
            checked += 1
print(f"ddpm_step_by_hand matches DDPMSampler.step in all {checked} cases "
      "(t = 999, 500, 100, 1, 0; σ² = β̃ and β; with and without clipping)")

# %% [markdown]
# ### No noise at the last step
#
# At the paper's $t = 1$ (index 0) Algorithm 2 sets $z = 0$: the chain ends at the mean. Adding
# noise there would put grain of standard deviation $\sigma_1$ on the finished image, which no later
# step could remove. Two different generators must therefore give the same final step.
#
# There is more to see: at $t = 1$, $\bar\alpha_0 = 1$ makes the posterior's coefficients
# $\sqrt{\bar\alpha_0}\,\beta_1/(1-\bar\alpha_1) = 1$ and $\sqrt{\alpha_1}(1-\bar\alpha_0)/(1-\bar\alpha_1) = 0$,
# so the last step returns exactly $\hat x_0$. The final image *is* the model's last guess of $x_0$.

# %%
sampler = DDPMSampler(schedule)                                   # σ² = β̃, clip_x0=True: the defaults
with torch.no_grad():
    eps = model(x_t, torch.zeros(4, dtype=torch.long))
out_a = sampler.step(eps, 0, x_t, generator=generator(1))
out_b = sampler.step(eps, 0, x_t, generator=generator(2))
print("last step, two different generators, same result:", torch.equal(out_a.prev_sample, out_b.prev_sample))
torch.testing.assert_close(out_a.prev_sample, out_a.pred_x0)
print("and the last step returns x̂_0 itself:", True)
print(f"posterior coefficients at index 0: x_0 → {float(schedule.posterior_mean_coef1[0]):.1f}, "
      f"x_t → {float(schedule.posterior_mean_coef2[0]):.1f}")
print(f"the sampler's timesteps: {len(sampler)} of them, {sampler.timesteps[:3].tolist()} ... {sampler.timesteps[-3:].tolist()}")

# %% [markdown]
# ## 2. The package's loop, and a trajectory
#
# From here on the package does the work. `ddpm_teach.samplers.sample(model, sampler, n, generator=...)`
# is the one loop for every sampler: draw $x_T$, then for each of `sampler.timesteps` call the model
# and `sampler.step`. The generator is the only source of randomness (for $x_T$ and every $z$), so a
# seed fixes the samples. With `return_trajectory=True` it also returns every $x_t$ and every
# $\hat x_0$ along the way.
#
# We run Algorithm 2 exactly as written, over all $T = 1000$ steps (20 at CI size), for a few images.

# %%
ddpm_teach.course.section("2. The loop and a trajectory")
with timed("DDPM trajectory"):
    images, trajectory = sample(model, DDPMSampler(schedule, steps=TRAJECTORY_STEPS), N_TRAJECTORY,
                                generator=generator(0), progress=False, return_trajectory=True)
print("x   :", "[S+1, B, C, H, W] (x_T first, the final sample last)")
print("pred_x0:", "[S, B, C, H, W] (x̂_0 at each step)")
assert trajectory.x.shape == (len(trajectory.timesteps) + 1, N_TRAJECTORY, 1, 28, 28)
assert trajectory.pred_x0.shape == (len(trajectory.timesteps), N_TRAJECTORY, 1, 28, 28)
torch.testing.assert_close(trajectory.x[-1], images)

# %% [markdown]
# Most of the picture appears late: with the linear schedule $x_t$ is nearly pure noise until
# $t \approx 600$ (notebook 02). To show that part well, the figure picks frames by timestep, denser
# near the end, rather than evenly spaced steps. Top band: $x_t$, the state of the chain. Bottom band:
# $\hat x_0$, the model's guess of the final image at that step (eq. 15, clipped).

# %%
def frames_at(trajectory: Trajectory, targets) -> Trajectory:
    """A sub-trajectory: the steps whose timesteps are nearest to ``targets`` (descending), plus the final sample."""
    timesteps = trajectory.timesteps
    ks = sorted({int((timesteps - t).abs().argmin()) for t in targets})
    final = len(timesteps)                                        # index of the final sample in trajectory.x
    return Trajectory(timesteps[ks], trajectory.x[ks + [final]], trajectory.pred_x0[ks])


targets = [999, 800, 600, 450, 300, 200, 120, 60, 20]
fig = plot_trajectory(frames_at(trajectory, targets), n_show=len(targets) + 1, n_images=4)
fig.suptitle("DDPM reverse process: x_t (top) and the model's x̂_0 (bottom)", y=1.01)
plt.show()

# %% [markdown]
# Read it column by column. At $t = 999$ the guess $\hat x_0$ is noise: eq. 15 divides by
# $\sqrt{\bar\alpha_{999}} \approx 0.006$, so it blows small errors up, and clipping to $[-1, 1]$ leaves
# black and white speckle (§5). Look for the columns where it turns into a soft blur: from that much noise
# the best guess (in squared error) is an average over many possible garments. A little later, at a
# different column for each image, the guess commits to a kind of garment and a silhouette, while $x_t$
# still looks like noise to the eye; follow one image along its row and see where its garment is decided
# (for some images only late, around $t = 450$) and that it keeps it from there. The last few hundred steps add detail: coarse to fine, as DDPM
# describes for its own samples (§4.3 and Fig. 6). Compare the last column with the $\hat x_0$ of
# the steps before it: the final sample is the last $\hat x_0$ (§1).
#
# The same as an animation of all images, about 40 frames with the same denser-near-the-end choice.
# (`animate_trajectory` returns a matplotlib animation; in a notebook, `HTML(anim.to_jshtml())`
# shows it with play controls. `ddpm_teach.plotting.save_animation` writes a GIF.)

# %%
# NBVAL_IGNORE_OUTPUT
animation_targets = sorted({int(round(999 * (1 - u) ** 2)) for u in np.linspace(0, 1, 40)}, reverse=True)
anim_frames = frames_at(trajectory, animation_targets)
anim = animate_trajectory(anim_frames, nrow=N_TRAJECTORY, interval=120, max_frames=40)
HTML(anim.to_jshtml())

# %% [markdown]
# ## 3. Fewer steps: respacing (Improved DDPM §4)
#
# A thousand model calls per image is slow (see the timing line under the trajectory), and §6 wants
# hundreds of images. Nichol & Dhariwal (Improved DDPM,
# [arXiv:2102.09672](https://arxiv.org/abs/2102.09672), §4) sample a trained model over a
# **sub-sequence** $\tau_1 < \dots < \tau_S$ of the timesteps, without retraining. The trick: the
# forward process restricted to those timesteps is again a diffusion, with
#
# $$\bar\alpha'_i = \bar\alpha_{\tau_i}, \qquad \beta'_i = 1 - \frac{\bar\alpha_{\tau_i}}{\bar\alpha_{\tau_{i-1}}}, \qquad
# \tilde\beta'_i = \frac{1-\bar\alpha_{\tau_{i-1}}}{1-\bar\alpha_{\tau_i}}\,\beta'_i,$$
#
# and Algorithm 2 runs unchanged on $\beta'$ (the model is still called with the original $t = \tau_i$,
# since that is what it was trained on). `DDPMSampler(schedule, steps=S)` does this; `sampler.respaced`
# holds the respaced schedule. By hand, for $S = 10$:

# %%
ddpm_teach.course.section("3. Respacing")
sampler_10 = DDPMSampler(schedule, steps=10)
tau = sampler_10.timesteps.flip(0)                                     # ascending: τ_1 .. τ_S
alpha_bar_tau = schedule.alphas_cumprod[tau]
alpha_bar_before = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar_tau[:-1]])   # ᾱ_{τ_0} = 1
betas_respaced = 1 - alpha_bar_tau / alpha_bar_before                 # β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}
torch.testing.assert_close(sampler_10.respaced.betas, betas_respaced)
torch.testing.assert_close(sampler_10.respaced.alphas_cumprod, alpha_bar_tau)
print("sampler.timesteps (descending):", sampler_10.timesteps.tolist())
print("β'  (ascending τ):", [round(float(b), 4) for b in betas_respaced])
print("β̃'  (ascending τ):", [round(float(b), 4) for b in sampler_10.respaced.posterior_variance])
print(f"original β at the same τ: {float(schedule.betas[tau[1]]):.4f} ... {float(schedule.betas[tau[-1]]):.4f}")

# %% [markdown]
# One respaced step covers $\tau_i - \tau_{i-1}$ original ones, so its $\beta'$ is much larger than
# any original $\beta_t$: close to 0.9 for the first step at $S = 10$. That matters for the choice
# of variance, next. (DDIM, notebook 06, is the other road to few steps.)
#
# ## 4. The variance: $\sigma_t^2 = \beta_t$ or $\tilde\beta_t$ (DDPM §3.2)
#
# Eq. 11 fixes the mean. DDPM leaves the variance untrained and tries two values:
#
# * $\sigma_t^2 = \beta_t$ (`variance_type="fixed_large"`): the forward step's own noise. It is the
#   right reverse variance when the data itself is $\mathcal N(0, I)$;
# * $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ (`"fixed_small"`,
#   the package's default): the posterior variance of eq. 7. It is right when the data is a single
#   point.
#
# DDPM calls them the two extremes: they match the upper and lower bounds on the reverse process's
# entropy for data with unit variance per coordinate (Sohl-Dickstein et al. 2015). With $T = 1000$
# steps, DDPM reports, "both had similar results" (§3.2). The ratio
# $\tilde\beta_t/\beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$ is far from 1 only where one step
# changes $1-\bar\alpha$ a lot: near $t = 1$ (where $\tilde\beta_1 = 0$), and in every step of a
# respaced sampler, where one step jumps far.

# %%
ddpm_teach.course.section("4. The variance")
T = schedule.T
t_all = torch.arange(T)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
# left: σ_t itself, for every step of T = 1000 and for the 50 steps of a respaced sampler
axes[0].plot(t_all.numpy(), schedule.betas.sqrt().numpy(), color="C0", label="σ = √β_t, T = 1000")
axes[0].plot(t_all[1:].numpy(), schedule.posterior_variance[1:].sqrt().numpy(), "--", color="C1",
             label="σ = √β̃_t, T = 1000")
respaced_50 = DDPMSampler(schedule, steps=50)
tau_50 = respaced_50.timesteps.flip(0)                       # ascending τ
axes[0].plot(tau_50.numpy(), respaced_50.respaced.betas.sqrt().numpy(), "o", color="C0", markersize=3,
             label="σ = √β′, respaced to 50 steps")
axes[0].plot(tau_50[1:].numpy(), respaced_50.respaced.posterior_variance[1:].sqrt().numpy(), "s", color="C1",
             markersize=3, mfc="none", label="σ = √β̃′, respaced to 50 steps")
axes[0].set_yscale("log")
axes[0].set_ylabel("σ_t (log scale)")
axes[0].set_title("σ_t for both choices (β̃ = 0 at t = 0 is off the log axis)", fontsize=9)
# right: the ratio β̃/β, at T = 1000 and respaced
axes[1].plot(t_all.numpy(), (schedule.posterior_variance / schedule.betas).numpy(), label="T = 1000, every step")
for steps, marker in ((50, "o"), (10, "s")):
    respaced = DDPMSampler(schedule, steps=steps)
    tau_s = respaced.timesteps.flip(0)
    axes[1].plot(tau_s.numpy(), (respaced.respaced.posterior_variance / respaced.respaced.betas).numpy(),
                 marker=marker, markersize=3, label=f"respaced, {steps} steps")
axes[1].set_ylabel("β̃ / β")
axes[1].set_ylim(0, 1.05)
axes[1].set_title("how much smaller β̃ is than β", fontsize=9)
for ax in axes:
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, T)
    ax.set_xlabel("t (0-based index; log scale past 10)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %%
print(f"{'t':>5}{'β_t':>10}{'β̃_t':>10}{'β̃/β':>7}   |  respaced to 50 steps: {'τ':>4}{'β′':>9}{'β̃′':>9}{'β̃′/β′':>7}")
for t, i in zip((0, 1, 10, 100, 500, 999), (0, 1, 2, 5, 25, 49)):
    b, bt = float(schedule.betas[t]), float(schedule.posterior_variance[t])
    rb, rbt = float(respaced_50.respaced.betas[i]), float(respaced_50.respaced.posterior_variance[i])
    print(f"{t:>5}{b:>10.2e}{bt:>10.2e}{bt / b:>7.3f}   |  {'':>21}{int(tau_50[i]):>4}{rb:>9.2e}{rbt:>9.2e}{rbt / rb:>7.3f}")

# %% [markdown]
# At $T = 1000$ the ratio is within a few per cent of 1 from about $t = 100$ on, so over most of the
# chain the two choices are nearly the same process, as DDPM found. Respaced, each step jumps further,
# and the ratio falls far below 1 over the lower part of the chain: under about 0.7 below
# $t \approx 100$ at 50 steps, and below $t \approx 350$ at 10 steps. That is where the image gets its fine detail (§2: by then the silhouette is settled).
# There, $\sigma^2 = \beta'$ adds much more noise than the posterior says is left to add, and the few
# remaining steps cannot take it all out again.
#
# Now samples from the shipped model, with each variance, **the same seed** (so the same $x_T$
# and the same $z$ at every step; only $\sigma_t$ differs), respaced to `SCORE_STEPS` steps (50 at
# full size). These are also the samples that §6 scores, so we draw `N_SCORE` of each (256 at full
# size) and show the first 32.

# %%
samples = {}
for variance in ("fixed_small", "fixed_large"):
    with timed(f"{variance}: sampling"):
        samples[variance] = sample(model, DDPMSampler(schedule, steps=SCORE_STEPS, variance_type=variance),
                                   N_SCORE, generator=generator(0), progress=False)

# %%
test_data = load_dataset("fashion_mnist", train=False)             # the 10,000 test images (uint8)
real_images, _ = test_data.batch(torch.randperm(len(test_data), generator=generator(2))[:32])   # (32, 1, 28, 28) in [-1, 1]
fig, axes = plt.subplots(1, 3, figsize=(12.5, 8.4), layout="constrained")
for ax, (variance, label) in zip(axes, [("fixed_small", "σ² = β̃ (fixed_small)"), ("fixed_large", "σ² = β (fixed_large)")]):
    show_images(samples[variance][:32], nrow=4, ax=ax, title=f"{label}\n{SCORE_STEPS} respaced steps, seed 0")
show_images(real_images, nrow=4, ax=axes[2], title="real Fashion-MNIST\n32 random test images")
plt.show()

# %% [markdown]
# The same seed gives the same garments in the same places: the variance changes how each image
# is finished, not what it depends on at the start. Look at the backgrounds and edges: with
# $\sigma^2 = \beta$ more of the extra noise survives as grain and speckle at few steps. The scores
# in §6 put a number on it.
#
# The right panel is the yardstick: real test images, drawn at random, at the same size. Real
# garments have flat black backgrounds, clean outlines and, on many, fine detail (a collar, a
# print, the sole of a shoe). Go through the samples with that in mind: which could pass for a
# test image, and which are blotchy, half-formed or grainy? That gap is what the scores of §6
# measure, and §0 says why this model leaves one.
#
# ## 5. Clipping $\hat x_0$
#
# The data lives in $[-1, 1]$, but eq. 15 does not know that. At large $t$,
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$ divides by
# $\sqrt{\bar\alpha_t}$, which is about 0.006 at $t = 999$, so a small error in $\varepsilon_\theta$
# becomes a huge error in $\hat x_0$. DDPM's code (and `DDPMSampler(clip_x0=True)`, the default)
# clips $\hat x_0$ to $[-1, 1]$ and then forms the mean from the clipped value,
# $\mu = \tilde\mu_t(x_t, \mathrm{clip}(\hat x_0))$ (eq. 7, as `ddpm_step_by_hand(..., clip_x0=True)`
# did above). Unclipped, this is eq. 11 again.
#
# The same seed, with and without clipping:

# %%
ddpm_teach.course.section("5. Clipping x̂_0")
with timed("clipped and unclipped samples"):
    clipped, clipped_trajectory = sample(model, DDPMSampler(schedule, steps=SCORE_STEPS, clip_x0=True), N_CLIP,
                                         generator=generator(1), progress=False, return_trajectory=True)
    unclipped, unclipped_trajectory = sample(model, DDPMSampler(schedule, steps=SCORE_STEPS, clip_x0=False), N_CLIP,
                                             generator=generator(1), progress=False, return_trajectory=True)

# %%
fig, (ax_clipped, ax_unclipped, ax_difference, ax_chain) = plt.subplots(
    1, 4, figsize=(16, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.3]})
show_images(clipped, nrow=4, ax=ax_clipped, title="clip_x0=True")
show_images(unclipped, nrow=4, ax=ax_unclipped, title="clip_x0=False\n(shown clipped to [−1, 1])")
show_images(unclipped.clamp(-1, 1) - clipped, nrow=4, ax=ax_difference, title="difference\n(grey = equal)")
steps_t = unclipped_trajectory.timesteps.numpy()
outside = (unclipped_trajectory.pred_x0.abs() > 1).float().mean(dim=(1, 2, 3, 4))   # share per step, [S]
largest = unclipped_trajectory.pred_x0.abs().amax(dim=(1, 2, 3, 4))                   # max |x̂_0| per step, [S]
ax_chain.plot(steps_t, outside.numpy(), "o-", markersize=3, label="share of x̂_0 pixels outside [−1, 1]")
ax_chain.set_xlabel("t")
ax_chain.set_ylabel("share of pixels")
ax_chain.set_ylim(0, 1)
ax_chain.invert_xaxis()
twin = ax_chain.twinx()
twin.plot(steps_t, largest.numpy(), "s--", color="C3", markersize=3, label="largest |x̂_0|")
twin.set_yscale("log")
twin.set_ylabel("largest |x̂_0|", color="C3")
ax_chain.set_title("unclipped x̂_0 along the chain (time runs left to right)", fontsize=9)
ax_chain.legend(loc="upper center", fontsize=8)
twin.legend(loc="center right", fontsize=8)
fig.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
print(f"unclipped samples: {float((unclipped.abs() > 1).float().mean()):.1%} of final pixels outside [−1, 1], "
      f"values in [{float(unclipped.min()):.2f}, {float(unclipped.max()):.2f}]")
print(f"clipped samples:   {float((clipped.abs() > 1).float().mean()):.1%} of final pixels outside [−1, 1], "
      f"values in [{float(clipped.min()):.2f}, {float(clipped.max()):.2f}]")
print(f"mean |difference| between the two sets (as displayed): {float((unclipped.clamp(-1, 1) - clipped).abs().mean()):.3f}")
print(f"unclipped x̂_0 at the first step: largest |x̂_0| = {float(largest[0]):.1f}, "
      f"{float(outside[0]):.0%} of pixels outside [−1, 1]")
below_quarter = (outside < 0.25).nonzero()
print("the share outside [−1, 1] first falls below a quarter at t =",
      int(steps_t[int(below_quarter[0])]) if len(below_quarter) else "never")
late = torch.as_tensor(steps_t) <= 550                                      # the middle and late steps
print(f"from t = 550 down: {float(outside[late].min()):.0%} to {float(outside[late].max()):.0%} of the pixels "
      f"outside, largest |x̂_0| {float(largest[late].max()):.2f}")
largest_change = (unclipped.clamp(-1, 1) - clipped).abs().flatten(1).amax(dim=1)          # per image, [N_CLIP]
print(f"images in which some pixel differs by more than 0.5: {int((largest_change > 0.5).sum())} of {N_CLIP}")

# %% [markdown]
# What the figure shows, and why clipping helps:
#
# * **Early on, $\hat x_0$ is wild.** At the first step most of the unclipped $\hat x_0$ pixels lie
#   outside the data range, some by an order of magnitude (the printout gives the share and the largest
#   $|\hat x_0|$), and the share takes a while to fall below a quarter (right panel; the printout says at
#   which $t$). The mean $\tilde\mu_t$ blends $\hat x_0$ and $x_t$, so
#   an out-of-range $\hat x_0$ pulls $x_{t-1}$ towards values no image has. Clipping projects the
#   estimate onto what we *know* about the data, at no cost.
# * **But its weight is small there.** The weight of $\hat x_0$ in eq. 7,
#   $\sqrt{\bar\alpha_{t-1}}\,\beta_t/(1-\bar\alpha_t)$, is tiny at large $t$, so the wildest estimates
#   barely move the chain. Clipping changes the outcome through the middle and late steps, where a
#   smaller share of $\hat x_0$ is still out of range, and only by a little (the printout gives the share
#   and the largest $|\hat x_0|$ from $t = 550$ down), but its weight is large.
# * **Errors compound.** The chain feeds each $x_{t-1}$ back to the model. Once the state has
#   drifted to intensities the model never saw in training, its $\varepsilon_\theta$ is worse there,
#   and the next $\hat x_0$ is worse still. Clipping keeps the state near the training distribution.
# * **The result, here.** The same seed gives the same garments with and without clipping. Look at
#   the difference panel: where it is uniformly grey the two agree. The printout gives the mean
#   difference on the $[-1, 1]$ scale and counts the images that differ visibly somewhere (look for
#   dark edges and detail in those). It also says how many of the unclipped final pixels lie outside
#   $[-1, 1]$ and how far (they are clipped for display anyway). For this model and 50 steps expect
#   the effect to be small. It grows when each step leans harder on $\hat x_0$:
#   with few respaced steps, with DDIM (notebook 06, where $x_{t-1}$ is built from $\hat x_0$
#   directly), and with strong guidance (notebook 07; Imagen's *dynamic* thresholding, Saharia et al.
#   2022 §2.3, is the refined version). A perfect $\varepsilon_\theta$ would never predict an $x_0$
#   outside the data range, so the weaker the model, the more clipping helps.
#
# ## 6. Scoring samples: classifier-FID, with $N$ and the floor
#
# Pictures don't settle whether one sampler is better than another. The course scores samples with
# `ddpm_teach.evaluation.Evaluator`: a small Fashion-MNIST classifier (shipped as
# `checkpoints/fashion_mnist_classifier.pt`) supplies penultimate-layer features, and the
# **classifier-FID** is the Fréchet distance between Gaussians fitted to the features of $N$ samples
# and of the 10,000 test images (Heusel et al. 2017, with this classifier in place of Inception):
#
# $$d^2 = \lVert\mu_s - \mu_r\rVert^2 + \operatorname{tr}\big(\Sigma_s + \Sigma_r - 2(\Sigma_s\Sigma_r)^{1/2}\big).$$
#
# FID is biased upwards at small $N$: even $N$ *real* images score above 0, because their mean and
# covariance are noisy estimates. So every FID here comes with the **real-vs-real floor**: the FID of
# $N$ real training images against the test set, what a perfect generator would score at that $N$.
# Compare a score with its floor, never with a number from a paper (those use Inception features,
# other data and $N = 50{,}000$).

# %%
ddpm_teach.course.section("6. Scoring samples")
# NBVAL_IGNORE_OUTPUT
with timed("loading the evaluator (classifier, Fashion-MNIST test and train sets, test features)"):
    evaluator = Evaluator.load()
scores = {variance: evaluator.score(images) for variance, images in samples.items()}
print("DDPM, σ² = β̃, respaced to", SCORE_STEPS, "steps:")
print("  ", Evaluator.format_scores(scores["fixed_small"]))
print(f"   the score is {scores['fixed_small']['fid'] / scores['fixed_small']['fid_floor']:.1f} times the floor")

# %% [markdown]
# How to read it: the floor is what sampling error alone costs at this $N$; the distance from the
# floor to the score is what the model and sampler cost. For the shipped model, trained for 15 minutes
# on a CPU (see §0), expect the score at full size to sit several times above the floor (the last line
# printed says how many): a fair picture of a small model trained briefly on a CPU, not of DDPM. At CI
# size ($N = 32$) the numbers are dominated by noise and mean very little; run at full size for anything you want to compare.
#
# ### What the model makes: the class histogram
#
# An unconditional model should make every class about equally often: Fashion-MNIST has 6,000
# training images of each of its 10 classes. The evaluator's classifier labels each sample, and
# `score` returns the counts (`class_histogram`). The classifier is not perfect (its test accuracy is in
# `checkpoints/README.md`), so as a reference we also label $N$ real training images.

# %%
real = to_model_range(evaluator.train_data.images[torch.randperm(len(evaluator.train_data), generator=generator(1))[:N_SCORE]])
real_histogram = evaluator.score(real)["class_histogram"]
classes = evaluator.classes
fig, ax = plt.subplots(figsize=(10, 3.4))
width = 0.27
x = np.arange(len(classes))
ax.bar(x - width, np.array(scores["fixed_small"]["class_histogram"]) / N_SCORE, width, label="samples, σ² = β̃")
ax.bar(x, np.array(scores["fixed_large"]["class_histogram"]) / N_SCORE, width, label="samples, σ² = β")
ax.bar(x + width, np.array(real_histogram) / N_SCORE, width, color="0.6", label="real training images")
ax.axhline(1 / len(classes), color="k", linestyle="--", linewidth=1, label="uniform (1/10)")
ax.set_xticks(x)
ax.set_xticklabels(classes, rotation=20, fontsize=8)
ax.set_ylabel("share of images")
ax.set_title(f"classes the classifier assigns (N = {N_SCORE} each)", fontsize=10)
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{'class':<14}{'σ²=β̃':>8}{'σ²=β':>8}{'real':>8}   (counts out of N = {N_SCORE}; uniform would be {N_SCORE / 10:.1f})")
for name, a, b, r in zip(classes, scores["fixed_small"]["class_histogram"], scores["fixed_large"]["class_histogram"], real_histogram):
    print(f"{name:<14}{a:>8}{b:>8}{r:>8}")
for variance, label in (("fixed_small", "σ²=β̃"), ("fixed_large", "σ²=β")):
    counts = scores[variance]["class_histogram"]
    fewest, most = min(range(len(classes)), key=counts.__getitem__), max(range(len(classes)), key=counts.__getitem__)
    print(f"{label}: fewest {classes[fewest]} ({counts[fewest]}; real {real_histogram[fewest]}), "
          f"most {classes[most]} ({counts[most]}; real {real_histogram[most]})")
shift = [b - a for a, b in zip(scores["fixed_small"]["class_histogram"], scores["fixed_large"]["class_histogram"])]
for k in (max(range(len(classes)), key=shift.__getitem__), min(range(len(classes)), key=shift.__getitem__)):
    print(f"largest change from σ²=β̃ to σ²=β: {classes[k]} {shift[k]:+d}")

# %% [markdown]
# Real images give a nearly flat histogram (the wobble is sampling noise and classifier mistakes).
# Samples from a weak unconditional model usually don't: read off the bars which classes it
# over-produces and which it makes too rarely; the lines under the table name the extremes for each
# variance, next to the real images' counts of the same classes. Two causes mix in such a
# histogram. The model itself may favour some modes (an undertrained model has learnt some garments
# better than others), and the classifier has to put every sample in *some* class, so half-formed or
# noisy samples pile up in whichever class they look least unlike. Compare the two variances: the
# noisier $\sigma^2 = \beta$ samples shift the histogram too (the last two lines printed name the classes
# that gain and lose the most). An uneven histogram is one of the things FID punishes, through the feature
# mean. Notebook 07 takes control of the class with classifier-free guidance.
#
# ### $\beta$ vs $\tilde\beta$, measured
#
# The two sets of §4 have the same $N$, the same seed and the same number of steps, so their scores
# compare fairly (the floor is the same for both).

# %%
# NBVAL_IGNORE_OUTPUT
print(f"DDPM respaced to {SCORE_STEPS} steps, N = {N_SCORE} samples each, seed 0")
print(f"{'variance':<24}{'classifier-FID':>15}{'floor (real vs real)':>22}")
for variance, label in (("fixed_small", "σ² = β̃  (fixed_small)"), ("fixed_large", "σ² = β   (fixed_large)")):
    print(f"{label:<24}{scores[variance]['fid']:>15.3f}{scores[variance]['fid_floor']:>22.3f}")

# %% [markdown]
# Expect $\tilde\beta$ to score better at this few steps, for the reason of §4: respaced, $\beta'$ adds
# more noise per step than is left to remove. DDIM's Table 1 (Song et al. 2021) shows the same on
# CIFAR-10: with 10 to 50 respaced steps the large variance ($\hat\sigma$ there) scores far worse than
# the small one ($\eta = 1$: DDIM's name for DDPM with $\sigma^2 = \tilde\beta$, notebook 06). Improved DDPM §3.1 (their Fig. 1) plots $\tilde\beta_t/\beta_t$ over
# all $T$ steps: close to 1 except near $t = 0$, as in §4's figure. With all 1000 steps the two
# are close, as DDPM found; try it by setting `SCORE_STEPS = 1000` (slow on a CPU). Notebook 08
# *learns* a variance between the two bounds, which is what makes few-step DDPM sampling work well.
#
# ## 7. Exercises
#
# **Exercise 1.** In eq. 11, $\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon_\theta\big)$,
# what number multiplies $\varepsilon_\theta$ at 0-based index $t = 500$ (linear schedule, $T = 1000$)?
# Four significant digits. Check: `ddpm_teach.exercises.nb05.check_eps_coefficient(answer)`.
#
# **Exercise 2.** §3 printed the respaced $\beta'$ of every step for $S = 10$, and §4's table those of
# six steps for $S = 50$. Now take
# `DDPMSampler(schedule, steps=20)`: it runs over $\tau$ = 999, 946, 894, ..., 0. What is $\beta'$ of
# its *first* step, from $t = 999$ to $t = 946$? Check:
# `ddpm_teach.exercises.nb05.check_respaced_first_beta(answer)`.
#
# **Exercise 3.** Which variance gives the larger $\sigma_t$ at the paper's $t = 1$ (index 0),
# `"fixed_large"` or `"fixed_small"`? Is it the larger at every $t$? Check:
# `ddpm_teach.exercises.nb05.check_larger_variance(answer)`.
#
# Try them in the next cell; a worked solution to each is in **Solutions** at the end of the notebook
# (hidden; click to show).

# %%
ddpm_teach.course.section("7. Exercises")
# Your answers: uncomment, fill in and run.
# ddpm_teach.exercises.nb05.check_eps_coefficient(...)
# ddpm_teach.exercises.nb05.check_respaced_first_beta(...)
# ddpm_teach.exercises.nb05.check_larger_variance(...)

# %% [markdown]
# ## Summary
#
# * **Algorithm 2** walks from $x_T \sim \mathcal N(0, I)$ to $x_0$ with
#   $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$, where $\mu_\theta$ comes from $\varepsilon_\theta$ by
#   eq. 11, which equals the posterior mean $\tilde\mu_t(x_t, \hat x_0)$ of eq. 7 with the estimate
#   $\hat x_0$ of eq. 15. `ddpm_step_by_hand` matched `DDPMSampler.step` for every case we tried.
# * **No noise at the last step**: at the paper's $t = 1$ the chain returns its mean, which there is
#   exactly $\hat x_0$.
# * **Variance** (DDPM §3.2): $\sigma_t^2 = \beta_t$ or $\tilde\beta_t \le \beta_t$, the two bounds.
#   Over all 1000 steps they are almost the same process. Respaced to few steps the gap grows, and
#   $\tilde\beta$ is the safer choice (measured in §6).
# * **Respacing** (Improved DDPM §4): sample over a sub-sequence $\tau$ with
#   $\beta'_i = 1 - \bar\alpha_{\tau_i}/\bar\alpha_{\tau_{i-1}}$, with no retraining:
#   `DDPMSampler(schedule, steps=S)`.
# * **Clipping** $\hat x_0$ to $[-1, 1]$ keeps the chain in the data range while the early estimates
#   are wild; it matters most for weak models.
# * **The trajectory** shows coarse-to-fine generation: $\hat x_0$ settles on the garment long
#   before $x_t$ looks like one.
# * **Scores**: classifier-FID with its $N$ and the real-vs-real floor, and a class histogram. The
#   shipped model was trained briefly on a CPU (15 minutes); its FID sits several times above the floor
#   at the same $N$ (§6 prints both and their ratio), which is the honest size of that under-training.
#
# **Next:** notebook 06 (DDIM) replaces the Markov chain with a non-Markovian one that uses the same
# trained model, is deterministic at $\eta = 0$, and needs far fewer steps.

# %% [markdown]
# ## Solutions
#
# Worked solutions to the exercises of §7. The code is hidden: try the exercises first, then
# double-click a cell (Colab) or click its collapsed input (JupyterLab) to show it. Each ends with the
# same check you ran, so each prints `Correct!`.

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 1 (double-click to show the code)
# The factor of ε_θ in eq. 11 is β_t / (√α_t · √(1 − ᾱ_t)).
t = 500
answer_1 = float(schedule.betas[t] / (schedule.alphas[t].sqrt() * (1 - schedule.alphas_cumprod[t]).sqrt()))
ddpm_teach.exercises.nb05.check_eps_coefficient(answer_1)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 2 (double-click to show the code)
# 1 − ᾱ_999 / ᾱ_946, or read it from the respaced schedule.
answer_2 = float(1 - schedule.alphas_cumprod[999] / schedule.alphas_cumprod[946])
assert math.isclose(answer_2, float(DDPMSampler(schedule, steps=20).respaced.betas[-1]))
ddpm_teach.exercises.nb05.check_respaced_first_beta(answer_2)

# %% cellView="form" jupyter={"source_hidden": true}
# @title Solution to exercise 3 (double-click to show the code)
# Compare the two at index 0, and everywhere.
print("β_1 =", float(schedule.betas[0]), " β̃_1 =", float(schedule.posterior_variance[0]),
      " β̃ < β at every t:", bool((schedule.posterior_variance < schedule.betas).all()))
ddpm_teach.exercises.nb05.check_larger_variance("fixed_large")

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
# ← [04 · Training](04_training.ipynb) · [Contents](../README.md#the-course) · [Glossary](glossary.md) · [06 · DDIM sampling →](06_ddim_sampling.ipynb)
