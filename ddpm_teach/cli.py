"""The command line: ``python -m ddpm_teach train | sample | evaluate | export | train-classifier``.

The flags of ``train`` are built from the fields of :class:`TrainConfig` and :class:`UNetConfig`
(``--base-channels 32 --channel-mults 1 2 2 --steps 5000 ...``), so the two never drift apart.
Run ``python -m ddpm_teach train --help`` for them all.
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import types
import typing
from pathlib import Path
from typing import get_args

__all__ = ["main", "build_parser", "parse_args", "add_dataclass_arguments", "dataclass_from_args"]

# UNet fields that come from the data or the training options rather than their own flag
_DERIVED_MODEL_FIELDS = {"image_size", "in_channels", "num_classes", "learn_sigma"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, skip=frozenset(), title: str | None = None) -> None:
    """One flag per dataclass field, typed from its annotation, with its default."""
    group = parser.add_argument_group(title or cls.__name__)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if origin in (typing.Union, types.UnionType):        # X | None
            kind = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(kind), typing.get_args(kind)
        kwargs = {"default": default, "dest": f.name}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs.update(choices=list(args), type=type(args[0]))
        elif origin is tuple:
            kwargs.update(nargs="+", type=args[0])
        else:
            kwargs["type"] = kind
        kwargs["help"] = f"(default: {default})"
        group.add_argument(_flag(f.name), **kwargs)


def dataclass_from_args(cls, args: argparse.Namespace, skip=frozenset(), **extra):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if hasattr(args, f.name) and f.name not in skip}
    values.update(extra)
    return cls(**values)


def build_parser(preset_name: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``preset_name`` makes that preset's values the defaults of ``train``."""
    from .training import PRESETS, TrainConfig, preset
    from .unet import UNetConfig
    from .evaluation import ClassifierTrainConfig

    parser = argparse.ArgumentParser(prog="python -m ddpm_teach", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a diffusion model (DDPM Algorithm 1)")
    _add_config_argument(train)
    train.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                       help="continue a run: a checkpoint path, or no value for {out_dir}/checkpoint.pt; it keeps "
                            "its own --steps unless given and saves to --out-dir (default: the checkpoint's folder)")
    add_dataclass_arguments(train, TrainConfig, title="training")
    add_dataclass_arguments(train, UNetConfig, skip=_DERIVED_MODEL_FIELDS, title="model")
    # None = "not given": a fresh run then takes TrainConfig's default, a resumed one keeps its own
    # steps and saves next to the checkpoint it resumed from (each flag's help already states its
    # dataclass default, so no ArgumentDefaultsHelpFormatter)
    train.set_defaults(steps=None, out_dir=None)
    train.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="start from a tested configuration; flags given as well override it: "
                            + "; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    if preset_name is not None:
        train.set_defaults(**preset(preset_name))

    smp = sub.add_parser("sample", help="sample images from a checkpoint to a PNG grid or an NPZ")
    _add_config_argument(smp)
    _add_sampling_arguments(smp)   # --checkpoint and --out are required, from the flags or --config
    smp.add_argument("--out", default=None, help="output file: .png (a grid) or .npz (images uint8, labels) (required)")
    smp.add_argument("--nrow", type=int, default=None, help="images per row of the PNG grid")

    ev = sub.add_parser("evaluate", help="classifier-FID and conditional accuracy of samples")
    _add_config_argument(ev)
    ev.add_argument("--samples", default=None, help="an .npz written by `sample` (images, labels)")
    _add_sampling_arguments(ev)
    ev.add_argument("--classifier", default=None, help="classifier checkpoint (default: the shipped one)")
    ev.add_argument("--data-root", default=None, help="where Fashion-MNIST lives (found offline if installed)")
    ev.add_argument("--json", default=None, help="also write the scores to this JSON file")

    exp = sub.add_parser("export", help="write the inference-only part of a training checkpoint (EMA weights, configs)")
    exp.add_argument("--checkpoint", required=True, help="a training checkpoint (runs/.../checkpoint.pt)")
    exp.add_argument("--out", required=True, help="where to write the small checkpoint (e.g. checkpoints/x.pt)")

    clf = sub.add_parser("train-classifier", help="train the Fashion-MNIST classifier used for evaluation")
    add_dataclass_arguments(clf, ClassifierTrainConfig, title="classifier")
    parser.subcommands = {"train": train, "sample": smp, "evaluate": ev, "export": exp, "train-classifier": clf}
    return parser


def _add_config_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a .toml (or .yaml) file of options, keyed by flag name; flags given as well win (configs/)")


def _add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    from .samplers import DEFAULT_DDIM_STEPS, Precision, SamplerKind, VarianceType

    p.add_argument("--checkpoint", default=None, help="a diffusion checkpoint (.pt)")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--sampler", choices=get_args(SamplerKind), default="ddim")
    p.add_argument("--steps", type=int, default=None,
                   help=f"sampling steps (DDPM default: all T; DDIM: {DEFAULT_DDIM_STEPS})")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM η (0 deterministic, 1 DDPM-like)")
    p.add_argument("--variance-type", choices=get_args(VarianceType), default=None,
                   help="DDPM variance (default: learned_range for learned-variance models, else fixed_small)")
    p.add_argument("--labels", default=None, help="'all' cycles through the classes; K samples class K only")
    p.add_argument("--guidance-scale", type=float, default=1.0, help="s in ε_u + s(ε_c − ε_u)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA ones")
    p.add_argument("--no-clip", action="store_true", help="do not clip x̂_0 to [-1, 1]")
    p.add_argument("--precision", choices=get_args(Precision), default="fp32",
                   help="run the network under autocast (bf16 is faster on CPUs with AMX / AVX-512-BF16)")


# -- commands -------------------------------------------------------------------------------
def _training_data(config):
    from .data import load_dataset

    return load_dataset(config.dataset, config.data_root, train=True, download=config.download,
                        image_size=config.image_size)


def cmd_train(args) -> int:
    from .checkpoint import load_checkpoint
    from .config import write_run_config
    from .trainer import Trainer, init_distributed
    from .training import TrainConfig
    from .unet import UNetConfig

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    processes, device = init_distributed(args.device)
    if args.resume:
        path = (Path(args.out_dir or TrainConfig.out_dir) / "checkpoint.pt" if args.resume == "auto"
                else Path(args.resume))
        overrides = {"device": args.device, "out_dir": str(args.out_dir or path.parent)}
        if args.steps is not None:
            overrides["steps"] = args.steps
        data = _training_data(TrainConfig.from_dict(load_checkpoint(path, kind="diffusion")["train_config"]))
        trainer = Trainer.resume(path, data, overrides, device=device, processes=processes)
        print(f"resuming {path} at step {trainer.step} of {trainer.config.steps}")
    else:
        for name in ("steps", "out_dir"):
            if getattr(args, name) is None:
                setattr(args, name, getattr(TrainConfig, name))
        config = dataclass_from_args(TrainConfig, args)
        model_flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(UNetConfig)
                       if f.name not in _DERIVED_MODEL_FIELDS}
        trainer = Trainer(config, model_flags, _training_data(config), device=device, processes=processes)
    if trainer.is_main:
        model_values = {k: v for k, v in trainer.model_config.to_dict().items() if k not in _DERIVED_MODEL_FIELDS}
        written = write_run_config(Path(trainer.config.out_dir) / "config.toml",
                                   {**trainer.config.to_dict(), **model_values})
        print(f"model: {trainer.model.num_parameters() / 1e6:.2f}M parameters on {trainer.device}; "
              f"data: {trainer.data.name} ({len(trainer.data)} images); out: {trainer.checkpoint_path}; "
              f"config: {written}")
    trainer.train()
    if trainer.is_main:
        print(f"done: step {trainer.step}, last loss {trainer.loss_history[-1]:.4f}, saved {trainer.checkpoint_path}")
    if trainer.world_size > 1:
        import torch.distributed as dist
        dist.destroy_process_group()
    return 0


def _labels_for(spec: str | None, n: int, num_classes: int | None):
    import torch

    if spec is None:
        return None
    if num_classes is None:
        raise SystemExit("error: --labels needs a class-conditional checkpoint; this one is unconditional.")
    if spec == "all":
        return torch.arange(n) % num_classes
    try:
        k = int(spec)
    except ValueError:
        raise SystemExit(f"error: --labels must be 'all' or a class index, got {spec!r}.") from None
    if not 0 <= k < num_classes:
        raise SystemExit(f"error: --labels {k} is out of range; this model has classes 0..{num_classes - 1}.")
    return torch.full((n,), k)


def generate(args):
    """Sample ``args.n`` images in batches: returns (images [N,C,H,W] in [-1,1], labels or None, checkpoint)."""
    import torch

    from .checkpoint import load_diffusion_model
    from .devices import pick_device
    from .samplers import make_sampler, sample

    device = pick_device(args.device)
    model, schedule, ckpt = load_diffusion_model(args.checkpoint, device=device, use_ema=not args.no_ema)
    sampler = make_sampler(schedule, args.sampler, steps=args.steps, eta=args.eta, variance_type=args.variance_type,
                           clip_x0=not args.no_clip, learned_variance=model.config.learn_sigma)
    labels = _labels_for(args.labels, args.n, model.config.num_classes)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    chunks = []
    from tqdm.auto import tqdm
    for start in tqdm(range(0, args.n, args.batch_size), desc=f"{sampler!r}", disable=args.n <= args.batch_size):
        n = min(args.batch_size, args.n - start)
        part = None if labels is None else labels[start:start + n]
        chunks.append(sample(model, sampler, n, labels=part, guidance_scale=args.guidance_scale,
                             generator=generator, device=device, progress=args.n <= args.batch_size,
                             precision=args.precision).cpu())
    return torch.cat(chunks), labels, ckpt


def cmd_sample(args) -> int:
    import numpy as np

    from .data import from_model_range
    from .plotting import save_image_grid

    out = Path(args.out)
    if out.suffix not in (".png", ".npz"):
        raise SystemExit(f"error: --out must end in .png or .npz, got {out.name!r}.")
    images, labels, _ = generate(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        save_image_grid(images, out, nrow=args.nrow or max(1, int(len(images) ** 0.5)))
    else:
        pixels = from_model_range(images).numpy()                    # uint8 [N, C, H, W]
        if pixels.shape[1] == 1:
            pixels = pixels[:, 0]                                    # [N, H, W]
        np.savez_compressed(out, images=pixels,
                            labels=(labels.numpy() if labels is not None else np.full(len(pixels), -1)).astype(np.int64))
    print(f"wrote {len(images)} samples to {out}")
    return 0


def cmd_evaluate(args) -> int:
    import json

    import numpy as np
    import torch

    from .data import to_model_range
    from .evaluation import Evaluator

    if (args.samples is None) == (args.checkpoint is None):
        raise SystemExit("error: give either --samples FILE.npz or --checkpoint CK (to sample and score).")
    if args.samples:
        with np.load(args.samples) as f:
            if "images" not in f:
                raise SystemExit(f"error: {args.samples} has no 'images' array; write it with `sample --out X.npz`.")
            pixels = torch.from_numpy(f["images"])
            labels = torch.from_numpy(f["labels"]) if "labels" in f else None
        if pixels.ndim == 3:
            pixels = pixels[:, None]
        images = to_model_range(pixels)
        if labels is not None and bool((labels < 0).all()):
            labels = None
    else:
        images, labels, _ = generate(args)
    evaluator = Evaluator.load(args.classifier, data_root=args.data_root)
    scores = evaluator.score(images, labels)
    print(evaluator.format_scores(scores))
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2))
    return 0


def cmd_export(args) -> int:
    from .checkpoint import load_checkpoint, save_checkpoint, strip_for_inference

    path = save_checkpoint(strip_for_inference(load_checkpoint(args.checkpoint, kind="diffusion")), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_train_classifier(args) -> int:
    from .evaluation import ClassifierTrainConfig, train_classifier

    config = dataclass_from_args(ClassifierTrainConfig, args)
    _, accuracy, path = train_classifier(config)
    print(f"test accuracy {accuracy:.4f}; saved {path}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.  With ``--config FILE`` and/or ``train --preset NAME`` the command
    line is parsed again with their values as the defaults, so that flags given with them still
    win: flags, then the file, then the preset, then the dataclass defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config_file = getattr(args, "config", None)
    if config_file or getattr(args, "preset", None):
        args = _parse_with_defaults(args, argv, config_file)
    if args.command == "sample":   # required, but they may come from --config, which argparse cannot see
        for name in ("checkpoint", "out"):
            if getattr(args, name) is None:
                parser.subcommands["sample"].error(f"--{name} is required (as a flag, or as {name} = ... in --config)")
    return args


def _parse_with_defaults(args: argparse.Namespace, argv: list[str] | None, config_file: str | None) -> argparse.Namespace:
    from .config import config_defaults, read_config_file
    from .training import preset

    parser = build_parser()
    command = parser.subcommands[args.command]
    from_file = {}
    if config_file:
        also = frozenset({"preset"}) if args.command == "train" else frozenset()
        from_file = config_defaults(command, read_config_file(config_file), config_file, also=also)
    preset_name = args.preset if getattr(args, "preset", None) else from_file.pop("preset", None)
    command.set_defaults(**{**(preset(preset_name) if preset_name else {}), **from_file})
    return parser.parse_args(argv)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .training import NonFiniteLossError

    try:
        args = parse_args(argv)
    except ValueError as err:            # a bad --config file or preset: one line, before any work
        print(f"error: {err}", file=sys.stderr)
        return 2
    handler = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate,
               "train-classifier": cmd_train_classifier, "export": cmd_export}[args.command]

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # `kill` saves a training run as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, ImportError, CheckpointError, NonFiniteLossError) as err:
        # clear errors (bad input, missing data, bad checkpoints) print as one line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
