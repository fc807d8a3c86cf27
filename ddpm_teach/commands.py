"""What each ``python -m ddpm_teach`` command does, once :mod:`ddpm_teach.cli` has parsed it.

Every command checks its inputs and its outputs before the work (a read-only ``--out``, a folder
where a file is wanted, another run in ``--out-dir``), so that a mistake costs a second, not an
hour of sampling; :func:`ddpm_teach.cli.main` turns each such error into one line and exit code 2.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

__all__ = ["DERIVED_MODEL_FIELDS", "cmd_train", "cmd_sample", "cmd_evaluate", "cmd_export", "cmd_train_classifier", "cmd_train_autoencoder",
           "generate", "read_samples_npz"]

# UNet fields that come from the data or the training options rather than their own flag
DERIVED_MODEL_FIELDS = frozenset({"image_size", "in_channels", "num_classes", "learn_sigma"})
# options of `train` that are not config fields (and so not "changes" on --resume)
_TRAIN_ONLY_OPTIONS = frozenset({"command", "config", "resume", "preset", "overwrite"})


def _training_data(config, autoencoder: dict | None = None):
    """The run's training data: images, or with ``config.autoencoder`` their latents, encoded
    once (by the autoencoder embedded in the checkpoint when a latent run is resumed)."""
    from .data import load_dataset

    images = load_dataset(config.dataset, config.data_root, train=True, download=config.download,
                          image_size=config.image_size, crop=config.crop)
    if not config.autoencoder:
        return images
    from .latent import LatentCodec, encode_dataset

    codec = (LatentCodec.from_record(autoencoder, "the resumed checkpoint's autoencoder") if autoencoder is not None
             else LatentCodec.load(config.autoencoder))
    print(f"encoding {len(images)} images with the autoencoder ({config.autoencoder}) once: "
          f"{list(codec.image_shape)} → {list(codec.latent_shape)}, scale factor {codec.scale_factor:.4f}")
    return encode_dataset(images, codec)


def _resume_overrides(args, folder) -> dict:
    """The options given to ``train --resume`` (flags or --config), as changes to the run."""
    given = {name: getattr(args, name) for name in args.given - _TRAIN_ONLY_OPTIONS}
    given["out_dir"] = str(folder.out_dir)
    return given


def _resumed_trainer(args, path: Path, saved, autoencoder, folder, device, processes):
    """``train --resume``: the run in the checkpoint, with the options given on this command line
    (or in its --config) as changes, which Trainer.resume applies or refuses."""
    from .trainer import Trainer

    given = _resume_overrides(args, folder)
    where = {k: given[k] for k in ("data_root", "download") if k in given}    # the data may have moved
    data = _training_data(dataclasses.replace(saved, **where), autoencoder)    # the run's own data (saved: its TrainConfig)
    trainer = Trainer.resume(path, data, given, device=device, processes=processes, folder=folder)
    if trainer.is_main:
        changed = "; ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in trainer.resume_changes.items() if k != "out_dir")
        print(f"resuming {path} at step {trainer.step} of {trainer.config.steps}" + (f" (changed: {changed})" if changed else ""))
    return trainer


def _fresh_trainer(args, config, folder, device, processes):
    from .trainer import Trainer
    from .unet import UNetConfig

    model_flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(UNetConfig)
                   if f.name not in DERIVED_MODEL_FIELDS}
    return Trainer(config, model_flags, _training_data(config), device=device, processes=processes, folder=folder)


def cmd_train(args) -> int:
    import contextlib

    import torch

    from .checkpoint import load_checkpoint
    from .config import write_run_config
    from .data import few_images_warning
    from .setup_probe import fixed_fields
    from .trainer import Processes, RunFolder, init_distributed, resume_changes
    from .training import TrainConfig

    if args.resume:
        if args.preset:
            raise ValueError("--preset cannot be combined with --resume: a resumed run keeps its own settings.")
        path = Path(args.out_dir or TrainConfig.out_dir) / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)
        folder = RunFolder(args.out_dir or path.parent, overwrite=args.overwrite)
        saved_ckpt = load_checkpoint(path, kind="diffusion")                  # read once here
        resume_changes(saved_ckpt, _resume_overrides(args, folder), path)     # refused before any data is loaded
        saved, saved_autoencoder = TrainConfig.from_dict(saved_ckpt["train_config"]), saved_ckpt.get("autoencoder")
        del saved_ckpt
        if "device" not in args.given:                    # the run's own device choice, unless --device says otherwise
            args.device = saved.device
        folder.written(path)                              # resuming in place: the checkpoint there is this run's
    else:
        for name in ("steps", "out_dir"):
            if getattr(args, name) is None:
                setattr(args, name, getattr(TrainConfig, name))
        config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})  # checks
        folder = RunFolder(config.out_dir, overwrite=args.overwrite)
    is_main = Processes.from_env().rank == 0
    with folder.claim() if is_main else contextlib.nullcontext():   # checked and locked before any work
        processes, device = init_distributed(args.device)
        trainer = (_resumed_trainer(args, path, saved, saved_autoencoder, folder, device, processes) if args.resume
                   else _fresh_trainer(args, config, folder, device, processes))
        if trainer.config.threads:
            torch.set_num_threads(trainer.config.threads)
        trainer.probe_fixed = fixed_fields(args.given, trainer.config.to_dict())    # flags given win over the probe
        if trainer.is_main and (few := few_images_warning(trainer.data)):
            print(f"warning: {few}", file=sys.stderr)
        if trainer.is_main:
            model_values = {k: v for k, v in trainer.model_config.to_dict().items() if k not in DERIVED_MODEL_FIELDS}
            written = write_run_config(folder.out_dir / "config.toml", {**trainer.config.to_dict(), **model_values})
            folder.extra_files.append(written)
            print(f"model: {trainer.model.num_parameters() / 1e6:.2f}M parameters on {trainer.device}; "
                  f"data: {trainer.data.name} ({len(trainer.data)} images); out: {trainer.checkpoint_path}; "
                  f"config: {written}")
        trainer.train()
    if trainer.is_main:
        last = f", last loss {trainer.loss_history[-1]:.4f}" if trainer.loss_history else ""
        print(f"done: step {trainer.step}{last}, saved {trainer.checkpoint_path}")
    if trainer.world_size > 1:                # every rank leaves together: one that tears down its gloo
        torch.distributed.barrier()           # connections while another still uses them can abort
        torch.distributed.destroy_process_group()
    return 0


def _labels_for(spec: str | None, n: int, num_classes: int | None):
    import torch

    if spec is None:
        return None
    if num_classes is None:
        raise ValueError("--labels needs a class-conditional checkpoint; this one is unconditional.")
    if spec == "all":
        return torch.arange(n) % num_classes
    try:
        k = int(spec)
    except ValueError:
        raise ValueError(f"--labels must be 'all' or a class index, got {spec!r}.") from None
    if not 0 <= k < num_classes:
        raise ValueError(f"--labels {k} is out of range; this model has classes 0..{num_classes - 1}.")
    return torch.full((n,), k)


def _check_fits_in_memory(n: int, channels: int, image_size: int) -> None:
    """``--n`` images (float32 while sampled, then uint8) must fit in this machine's memory."""
    import os

    needed = n * channels * image_size ** 2 * 5        # 4 bytes float32 + 1 byte uint8 each
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > total / 2:
        raise ValueError(f"--n {n} images would need {needed / 2**30:.0f} GiB, more than half of this machine's "
                         f"{total / 2**30:.0f} GiB; sample fewer and run the command several times with other --seed.")


def _sampler_for(args, schedule, model_config, objective: str, latent: bool = False):
    """The sampler the flags ask for, for the checkpoint's objective (``"eps"`` or ``"flow"``); a flag
    of the other family is an error that names it.  --sampler defaults to ddim (ε) or euler (flow).
    In latent space (``latent``) x̂_0 is never clipped: latents do not live in [-1, 1]."""
    from .flow import FLOW_SAMPLERS, make_flow_sampler
    from .samplers import make_sampler

    flow_shift = getattr(args, "flow_shift", None)
    if objective == "flow":
        kind = args.sampler or "euler"
        wrong = [(kind not in FLOW_SAMPLERS, f"--sampler {kind}"), (args.eta != 0.0, f"--eta {args.eta:g}"),
                 (args.variance_type is not None, f"--variance-type {args.variance_type}"),
                 (args.spacing is not None, f"--spacing {args.spacing}")]
        said = ", ".join(flag for bad, flag in wrong if bad)
        if said:
            raise ValueError(f"{said}: {args.checkpoint} is a flow-matching model (objective 'flow'), sampled with "
                             f"--sampler {' or '.join(FLOW_SAMPLERS)} on a uniform grid in t (--flow-shift moves it); "
                             "ddpm, ddim, dpmpp2m, --eta, --variance-type and --spacing are for ε-prediction models.")
        return make_flow_sampler(kind, steps=args.steps, shift=1.0 if flow_shift is None else flow_shift)
    if flow_shift is not None:
        raise ValueError(f"--flow-shift {flow_shift:g} is for flow-matching checkpoints (objective 'flow'); "
                         f"{args.checkpoint} is an ε-prediction model: its timesteps are chosen with --spacing.")
    kind = args.sampler or "ddim"
    if args.spacing == "karras" and kind in ("ddpm", "ddim"):
        raise ValueError(f"--spacing karras is for the ODE solvers (euler, heun, dpmpp2m), not --sampler {kind}.")
    return make_sampler(schedule, kind, steps=args.steps, eta=args.eta, variance_type=args.variance_type,
                        clip_x0=not (args.no_clip or latent), learned_variance=model_config.learn_sigma,
                        spacing=args.spacing)


def generate(args):
    """Sample ``args.n`` images in batches: returns (images [N,C,H,W] in [-1,1], labels or None, checkpoint).
    A latent checkpoint (notebook 10) is sampled in latent space and decoded by its embedded autoencoder."""
    import torch
    from tqdm.auto import tqdm

    from .checkpoint import checkpoint_objective, load_diffusion_model
    from .devices import pick_device
    from .latent import codec_from_checkpoint
    from .samplers import sample

    device = pick_device(args.device)
    model, schedule, ckpt = load_diffusion_model(args.checkpoint, device=device, use_ema=not args.no_ema)
    codec = codec_from_checkpoint(ckpt, str(args.checkpoint), device)       # checked against the UNet's input
    c, size = (codec.image_shape[0], codec.image_shape[1]) if codec else (model.config.in_channels, model.config.image_size)
    _check_fits_in_memory(args.n, c, size)
    sampler = _sampler_for(args, schedule, model.config, checkpoint_objective(ckpt), latent=codec is not None)
    print(f"{sampler!r}: {sampler.nfe} network evaluations (NFE) per image"
          + (" (each guided evaluation runs the conditional and unconditional batch)" if args.guidance_scale != 1.0 else "")
          + (f"; in latent space {list(codec.latent_shape)}, decoded to {list(codec.image_shape)}" if codec else ""))
    labels = _labels_for(args.labels, args.n, model.config.num_classes)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    chunks = []
    for start in tqdm(range(0, args.n, args.batch_size), desc=f"{sampler!r}", disable=args.n <= args.batch_size):
        n = min(args.batch_size, args.n - start)
        part = None if labels is None else labels[start:start + n]
        out = sample(model, sampler, n, labels=part, guidance_scale=args.guidance_scale, generator=generator,
                     device=device, progress=args.n <= args.batch_size, precision=args.precision)
        chunks.append((codec.decode(out) if codec is not None else out).cpu())     # latents → pixels
    return torch.cat(chunks), labels, ckpt


def cmd_sample(args) -> int:
    import numpy as np

    from .data import from_model_range
    from .files import atomic_write, check_output_file
    from .plotting import save_image_grid

    out = check_output_file(args.out, "--out")
    if out.suffix not in (".png", ".npz"):
        raise ValueError(f"--out must end in .png or .npz, got {out.name!r}.")
    images, labels, _ = generate(args)
    if out.suffix == ".png":
        save_image_grid(images, out, nrow=args.nrow or max(1, int(len(images) ** 0.5)))
    else:
        pixels = from_model_range(images).numpy()                    # uint8 [N, C, H, W]
        if pixels.shape[1] == 1:
            pixels = pixels[:, 0]                                    # [N, H, W]
        label_array = (labels.numpy() if labels is not None else np.full(len(pixels), -1)).astype(np.int64)
        atomic_write(out, lambda f: np.savez_compressed(f, images=pixels, labels=label_array))
    print(f"wrote {len(images)} samples to {out}")
    return 0


def read_samples_npz(path: str):
    """The images (float [N, C, H, W] in [-1, 1]) and labels (or None) of an ``.npz`` written by
    ``sample``, checked: keys, dtype, shape, label count.  Never unpickles anything."""
    import zipfile

    import numpy as np
    import torch

    from .data import to_model_range

    def bad(why: str) -> ValueError:
        return ValueError(f"--samples {path}: {why}; write it with `python -m ddpm_teach sample --out FILE.npz`.")

    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):          # a bare .npy array named .npz
            raise bad("it is a single array, not an .npz with 'images' (and 'labels')")
        with loaded as f:
            if "images" not in f.files:
                raise bad("it has no 'images' array")
            pixels, labels = f["images"], (f["labels"] if "labels" in f.files else None)
    except FileNotFoundError:
        raise ValueError(f"--samples {path} does not exist; check the path.") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        if isinstance(err, ValueError) and str(err).startswith("--samples"):
            raise
        raise bad("it is not an .npz of arrays (or it holds Python objects, which are never loaded)") from None
    if pixels.dtype != np.uint8:
        raise bad(f"'images' must be uint8 pixels 0..255, got {pixels.dtype}")
    if pixels.ndim not in (3, 4) or len(pixels) < 2:
        raise bad(f"'images' must be [N, H, W] or [N, C, H, W] with N >= 2, got shape {pixels.shape}")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(pixels) or labels.dtype.kind not in "iu"):
        raise bad(f"'labels' must be {len(pixels)} integers, one per image, got {labels.dtype} of shape {labels.shape}")
    if labels is not None and bool((labels < 0).any()) and not bool((labels < 0).all()):
        raise bad("'labels' mixes class indices with negative values; use -1 for every image (unconditional) or none")
    images = to_model_range(torch.from_numpy(pixels if pixels.ndim == 4 else pixels[:, None]))
    labels = None if labels is None or bool((labels < 0).all()) else torch.from_numpy(labels.astype(np.int64))
    return images, labels


def _checkpoint_images(path) -> tuple[tuple[int, int, int], list[str] | None]:
    """The shape [C, H, W] of the images a diffusion checkpoint makes (decoded, for a latent one)
    and the class names of its data set (None if not recorded)."""
    from .checkpoint import load_checkpoint
    from .latent import codec_from_checkpoint

    ckpt = load_checkpoint(path, kind="diffusion")
    codec = codec_from_checkpoint(ckpt, str(path))
    config = ckpt["model_config"]
    shape = tuple(codec.image_shape) if codec else (config["in_channels"], config["image_size"], config["image_size"])
    return shape, (ckpt.get("dataset") or {}).get("classes")


def cmd_evaluate(args) -> int:
    from .evaluation import Evaluator, find_classifier
    from .files import atomic_write, check_output_file

    if (args.samples is None) == (args.checkpoint is None):
        raise ValueError("give either --samples FILE.npz or --checkpoint CK (to sample and score).")
    if args.json:
        check_output_file(args.json, "--json")
    if args.samples:
        images, labels = read_samples_npz(args.samples)
        shape, classes = tuple(images.shape[1:]), None
    else:                      # the classifier and its data are found before the sampling, not after
        shape, classes = _checkpoint_images(args.checkpoint)
    classifier = args.classifier or find_classifier(shape[0], shape[-1], classes)
    evaluator = Evaluator.load(classifier, data_root=args.data_root, dataset=args.dataset)
    if not args.samples:
        images, labels, _ = generate(args)
    if labels is not None and int(labels.max()) >= len(evaluator.classes):
        raise ValueError(f"--samples {args.samples}: labels go up to {int(labels.max())}, but the classifier knows "
                         f"{len(evaluator.classes)} classes.")
    scores = evaluator.score(images, labels)
    print(evaluator.format_scores(scores))
    if args.json:
        text = json.dumps(scores, indent=2)
        atomic_write(args.json, lambda f: f.write(text), binary=False)
    return 0


def cmd_export(args) -> int:
    from .checkpoint import load_checkpoint, save_checkpoint, strip_for_inference
    from .files import check_output_file

    source, out = Path(args.checkpoint), check_output_file(args.out, "--out")
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the --checkpoint itself: exporting over it would replace the training state "
                         "(optimizer, RNG) with the inference-only file, and --resume would refuse it. Give another --out.")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; add --overwrite to replace it, or give another --out.")
    path = save_checkpoint(strip_for_inference(load_checkpoint(source, kind="diffusion")), out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_train_classifier(args) -> int:
    from .evaluation import ClassifierTrainConfig, train_classifier
    from .files import check_output_file

    config = ClassifierTrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ClassifierTrainConfig)})
    out = check_output_file(config.out, "--out")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; add --overwrite to replace it, or give another --out.")
    _, accuracy, path = train_classifier(config)
    print(f"test accuracy {accuracy:.4f}; saved {path}")
    return 0


def cmd_train_autoencoder(args) -> int:
    """Train the autoencoder, score its reconstructions of ``--eval-n`` test images, and save
    both in one checkpoint (``--out``, checked before training)."""
    from .autoencoder import AutoencoderTrainConfig, reconstruction_scores, train_autoencoder
    from .checkpoint import save_checkpoint
    from .data import load_dataset, to_model_range
    from .evaluation import Evaluator
    from .files import check_output_file

    config = AutoencoderTrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AutoencoderTrainConfig)})
    out = check_output_file(config.out, "--out")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; add --overwrite to replace it, or give another --out.")
    evaluator = Evaluator.load(config.classifier, data_root=config.data_root)      # before the work: the data is there
    model, scale, payload = train_autoencoder(config, save=False)
    test = load_dataset(config.dataset, config.data_root, train=False)
    scores = reconstruction_scores(model, evaluator, to_model_range(test.images), n=min(args.eval_n, len(test)))
    payload["scores"] = scores
    path = save_checkpoint(payload, out)
    print(f"trained {payload['steps']} steps in {payload['train_seconds'] / 60:.1f} min; latent "
          f"{tuple(model.config.latent_shape)}, scale factor {scale:.4f}")
    print(f"reconstructions of N={scores['n']} test images: MSE {scores['mse']:.5f}, classifier-FID {scores['fid']:.3f} "
          f"(the same images unreconstructed: {scores['fid_originals']:.3f}; real-vs-real floor at N={scores['n']}: "
          f"{scores['fid_floor']:.3f})")
    print(f"saved {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_data(args) -> int:
    """``data emoji``: fetch the source (``--download``) and/or build the image folder (``--out``)."""
    from .emoji import build_emoji_folder, check_build_options, check_output_folder, fetch_source, find_source

    if args.out is None and not args.download:
        raise ValueError("give --out FOLDER to build the data set (and/or --download to fetch its source).")
    if args.out is not None:                              # checked before a 74 MB download
        check_build_options(args.size, args.test_fraction)
        check_output_folder(args.out, args.overwrite)
    source = fetch_source(args.source) if args.download else find_source(args.source)
    if args.out is None:
        print(f"emoji source ready: {source}")
        return 0
    summary = build_emoji_folder(args.out, args.size, source=source, skin_tones=args.skin_tones,
                                 test_fraction=args.test_fraction, overwrite=args.overwrite)
    per = ", ".join(f"{k} {v}" for k, v in summary["per_category"]["train"].items())
    print(f"wrote {summary['images']} emoji ({summary['size']}x{summary['size']} RGB) to {args.out}: "
          f"{summary['train']} train, {summary['test']} test; train per category: {per}")
    return 0
