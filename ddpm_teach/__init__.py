"""ddpm_teach: the small, tested package behind the ddpm-teach diffusion course.

Modules (each introduced in the notebook named):
    schedules   β schedules and every coefficient derived from them      (01, 02)
    forward     q_step, q_sample, q_posterior and x_0/ε conversions       (01)
    unet        the ε-prediction UNet, class conditioning, learned σ      (03, 07, 08)
    training    Algorithm 1 as pure functions: train_step, EMA, lr        (04)
    trainer     the runner: checkpoints, exact resume, budget, DDP        (04)
    samplers    DDPM, DDIM, classifier-free guidance, the sampling loop   (05, 06, 07)
    solvers     Euler, Heun, DPM-Solver++(2M) on the probability-flow ODE (09)
    autoencoder the KL autoencoder of latent diffusion, its loss, the scale factor (10)
    latent      latent diffusion: datasets encoded once, checkpoints that embed their autoencoder (10)
    flow        flow matching: the straight path, velocity loss, Euler/Heun in t, straightness (11)
    losses      the variational bound terms for learned variance          (08)
    evaluation  the Fashion-MNIST classifier, classifier-FID, accuracy    (05-08)
    data        Fashion-MNIST, MNIST, CIFAR-10, image folders, offline    (04)
    plotting    image grids, trajectories, animations                     (all)
    devices     cuda / mps / cpu selection
    config, cli, commands, files   the command line, its config files, safe writes

Importing ``ddpm_teach`` never imports torchvision: only dataset downloads need it, and a
broken torchvision is reported there, with what to do.
"""
from importlib import import_module

__version__ = "0.1.0"
__all__ = ["__version__", "schedules", "forward", "unet", "samplers", "solvers", "autoencoder", "latent", "flow", "training", "trainer", "losses",
           "evaluation", "data", "plotting", "devices", "checkpoint", "course", "exercises", "widgets", "cli",
           "commands", "config", "files"]


def __getattr__(name: str):
    # submodules load on first use: `import ddpm_teach; ddpm_teach.samplers.sample(...)`
    if name in __all__ and name != "__version__":
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ddpm_teach' has no attribute {name!r}")
