"""Checkpoints: plain data plus state dicts, written atomically, read with ``weights_only=True``.

A checkpoint is a dict::

    {"format": "ddpm_teach.checkpoint.v1", "kind": "diffusion" | "classifier",
     "model_config": {...}, "model": state_dict, ...}

Diffusion checkpoints also hold ``"schedule"`` (see ``NoiseSchedule.to_config``), ``"ema"``
(the EMA weights), ``"autoencoder"`` (latent diffusion: the embedded autoencoder, see
:mod:`ddpm_teach.latent`), ``"train_config"``, ``"dataset"`` and, while training, the optimizer, LR
scheduler, grad scaler, RNG states, ``"step"`` and ``"loss_history"``.  Nothing in it is code,
so it loads with ``torch.load(..., weights_only=True)``: a file that needs unpickling of
arbitrary objects is refused.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .files import atomic_write

__all__ = ["FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "load_diffusion_model",
           "load_state_dict_checked", "strip_for_inference", "checkpoint_objective"]

FORMAT = "ddpm_teach.checkpoint.v1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, unsafe, or does not match the model."""


def save_checkpoint(payload: dict, path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically (:func:`ddpm_teach.files.atomic_write`): a
    temporary file in the same folder, fsynced, then renamed over the target, with the umask's
    permissions.  A crash mid-write leaves the old file intact; a full disk says so."""
    payload = {"format": FORMAT, **payload}
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` and check its format (and ``kind``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist. Check the path, or train one with "
                              "`python -m ddpm_teach train` (shipped ones live in checkpoints/).")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        # torch's weights-only unpickler says "Weights only load failed ..." for *any* bad pickle
        # stream (random bytes too); only an attempt to load a global (a function or class) is unsafe
        if "global" in str(err).lower():
            raise CheckpointError(
                f"refused to load {str(path)!r}: it contains pickled Python objects, not just tensors and plain "
                "data, and loading it could run arbitrary code. Only load checkpoints made by ddpm_teach "
                f"from a source you trust. ({type(err).__name__})"
            ) from None
        boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
        detail = next((line.strip() for line in str(err).splitlines()
                       if line.strip() and not line.strip().startswith(boilerplate)), "")
        raise CheckpointError(f"{str(path)!r} is corrupt or not a PyTorch checkpoint ({type(err).__name__}: "
                              f"{detail[:200]}). Re-download it or re-train.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a ddpm_teach checkpoint (expected format {FORMAT!r}).")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{str(path)!r} holds a {payload.get('kind')!r} model, but a {kind!r} checkpoint is needed here.")
    return payload


def load_state_dict_checked(module: torch.nn.Module, state_dict: dict, source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with an error that says what does not match and what to do."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = [f"{k}: {tuple(state_dict[k].shape)} in {source}, {tuple(own[k].shape)} in the model"
                   for k in own if k in state_dict and own[k].shape != state_dict[k].shape]  # model order
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} shape mismatches (e.g. {wrong_shape[:2]})")
        raise CheckpointError(f"{source} does not match this model: " + "; ".join(parts) +
                              ". Build the model from the checkpoint's own config (load_diffusion_model does).")
    module.load_state_dict(state_dict)


def load_diffusion_model(path: str | os.PathLike, *, device: torch.device | str = "cpu", use_ema: bool = True):
    """Load a diffusion checkpoint: returns ``(model, schedule, checkpoint)`` with the model in
    eval mode on ``device``, its weights the EMA ones when the checkpoint has them."""
    from .schedules import NoiseSchedule
    from .unet import UNet, UNetConfig

    ckpt = load_checkpoint(path, kind="diffusion")
    refuse_other_network(ckpt, path)
    try:
        config = UNetConfig.from_dict(ckpt["model_config"])
        schedule = NoiseSchedule.from_config(ckpt["schedule"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{str(path)!r} has an unusable config: {err}") from None
    model = UNet(config)
    weights = ckpt.get("ema") if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    load_state_dict_checked(model, weights, source=str(path))
    return model.to(device).eval(), schedule, ckpt


def refuse_other_network(ckpt: dict, path) -> None:
    """A checkpoint written by ``Trainer(network=...)`` (a benchmark's diffusers peer) holds that
    network's weights, not a ddpm_teach UNet's: say so instead of a state-dict mismatch."""
    if ckpt.get("network"):
        raise CheckpointError(f"{str(path)!r} holds a {ckpt['network']} trained by a benchmark, not a ddpm_teach UNet; "
                              "load it with the code that built that network.")


def checkpoint_objective(ckpt: dict) -> str:
    """What a diffusion checkpoint's network predicts: ``"eps"`` (ε, DDPM) or ``"flow"`` (the
    velocity v of flow matching, notebook 11), from ``ckpt["train_config"]["objective"]``.
    Checkpoints written before flow matching have no such field: they are ``"eps"``."""
    from .training import OBJECTIVES

    objective = (ckpt.get("train_config") or {}).get("objective", "eps")
    if objective not in OBJECTIVES:
        raise CheckpointError(f"the checkpoint's train_config has objective {objective!r}; expected one of {OBJECTIVES}.")
    return objective


def strip_for_inference(ckpt: dict) -> dict:
    """Keep only what sampling needs (EMA weights as ``model``, configs, scores): the small
    files shipped in ``checkpoints/``."""
    keep = {k: ckpt[k] for k in ("kind", "model_config", "schedule", "train_config", "dataset", "step", "scores", "weights",
                                 "loss_history", "autoencoder") if k in ckpt}
    keep["model"] = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    keep["ema"] = None
    return keep
