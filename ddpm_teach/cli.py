"""The command line: ``python -m ddpm_teach train | sample | evaluate | export | train-classifier | train-autoencoder | data``.

The flags of ``train`` are built from the fields of :class:`TrainConfig` and :class:`UNetConfig`
(``--base-channels 32 --channel-mults 1 2 2 --steps 5000 ...``), so the two never drift apart.
Run ``python -m ddpm_teach train --help`` for them all.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import threading
import types
import typing
from pathlib import Path
from typing import get_args

__all__ = ["main", "build_parser", "parse_args", "add_dataclass_arguments", "dataclass_from_args"]

from .commands import DERIVED_MODEL_FIELDS as _DERIVED_MODEL_FIELDS


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2, as for every user error) and no abbreviated
    flags (so that ``--resume`` can tell exactly which options were given)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _number(kind, low: float, *, strict: bool = False):
    """An argparse type: a finite ``kind`` (int or float) >= ``low`` (> with ``strict``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            bound = f" {'>' if strict else '>='} {low:g}" if math.isfinite(low) else ""
            kind_name = "an integer" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"must be {kind_name}{bound}, got {text!r}")
        return value
    parse.__name__ = kind.__name__        # argparse and config files name the type by it
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
non_negative_float = _number(float, 0.0)
positive_float = _number(float, 0.0, strict=True)
finite_float = _number(float, -math.inf)


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
    from .autoencoder import AutoencoderTrainConfig
    from .evaluation import ClassifierTrainConfig

    parser = _Parser(prog="python -m ddpm_teach", description=__doc__.splitlines()[0])
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
    train.add_argument("--overwrite", action="store_true",
                       help="start afresh even if --out-dir already holds a run (its checkpoint is replaced)")
    train.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="start from a tested configuration; flags given as well override it: "
                            + "; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    if preset_name is not None:
        train.set_defaults(**preset(preset_name))

    smp = sub.add_parser("sample", help="sample images from a checkpoint to a PNG grid or an NPZ")
    _add_config_argument(smp)
    _add_sampling_arguments(smp)   # --checkpoint and --out are required, from the flags or --config
    smp.add_argument("--out", default=None, help="output file: .png (a grid) or .npz (images uint8, labels) (required)")
    smp.add_argument("--nrow", type=positive_int, default=None, help="images per row of the PNG grid")

    ev = sub.add_parser("evaluate", help="classifier-FID and conditional accuracy of samples")
    _add_config_argument(ev)
    ev.add_argument("--samples", default=None, help="an .npz written by `sample` (images, labels)")
    _add_sampling_arguments(ev)
    ev.add_argument("--classifier", default=None,
                    help="classifier checkpoint (default: the shipped one for these images: Fashion-MNIST or emoji)")
    ev.add_argument("--dataset", default=None,
                    help="the data set whose test split is the reference (default: the classifier's own, e.g. "
                         "fashion_mnist or data/emoji)")
    ev.add_argument("--data-root", default=None, help="where named data sets live (Fashion-MNIST is found offline if installed)")
    ev.add_argument("--json", default=None, help="also write the scores to this JSON file")

    exp = sub.add_parser("export", help="write the inference-only part of a training checkpoint (EMA weights, configs)")
    exp.add_argument("--checkpoint", required=True, help="a training checkpoint (runs/.../checkpoint.pt)")
    exp.add_argument("--out", required=True, help="where to write the small checkpoint (e.g. checkpoints/x.pt)")
    exp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    clf = sub.add_parser("train-classifier", help="train the classifier used for evaluation (Fashion-MNIST, or --dataset FOLDER)")
    add_dataclass_arguments(clf, ClassifierTrainConfig, title="classifier")
    clf.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    ae = sub.add_parser("train-autoencoder", help="train the latent-diffusion autoencoder (notebook 10)")
    add_dataclass_arguments(ae, AutoencoderTrainConfig, title="autoencoder")
    ae.add_argument("--eval-n", type=positive_int, default=1000,
                    help="test images whose reconstructions are scored (classifier-FID, MSE) after training")
    ae.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    data = sub.add_parser("data", help="build a data set folder (notebook 12: emoji)")
    data_sub = data.add_subparsers(dest="data_set", required=True)
    emoji = data_sub.add_parser("emoji", help="Noto emoji as a train/test image folder, one sub-folder per category")
    emoji.add_argument("--out", default=None, help="the folder to write (e.g. data/emoji); without it, --download only fetches")
    emoji.add_argument("--size", type=positive_int, default=32, help="image side in pixels, 4..64 (default: 32)")
    emoji.add_argument("--skin-tones", choices=("none", "all"), default="none",
                       help="none: only the default yellow of people emoji; all: add the five skin-tone variants, each "
                            "in its base emoji's split (default: none)")
    emoji.add_argument("--test-fraction", type=positive_float, default=0.15,
                       help="share of each category held out in test/ (default: 0.15)")
    emoji.add_argument("--source", default=None,
                       help="an unpacked emoji-datasource-google package (default: $DDPM_TEACH_EMOJI, else the folder "
                            "--download fills)")
    emoji.add_argument("--download", action="store_true",
                       help="fetch the source from registry.npmjs.org first if it is missing (74 MB)")
    emoji.add_argument("--overwrite", action="store_true", help="replace --out if it exists (once the new one is complete)")
    parser.subcommands = {"data": emoji, "train": train, "sample": smp, "evaluate": ev, "export": exp, "train-classifier": clf,
                          "train-autoencoder": ae}
    return parser


def _add_config_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a .toml (or .yaml) file of options, keyed by flag name; flags given as well win (configs/)")


def _add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    from .samplers import DEFAULT_DDIM_STEPS, Precision, SamplerKind, VarianceType
    from .solvers import SolverSpacing

    p.add_argument("--checkpoint", default=None, help="a diffusion or flow-matching checkpoint (.pt)")
    p.add_argument("--n", type=positive_int, default=64, help="number of images")
    p.add_argument("--sampler", choices=get_args(SamplerKind), default=None,
                   help="default: ddim for an ε-prediction checkpoint, euler for a flow-matching one (which takes "
                        "euler or heun)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"solver steps (DDPM default: all T; the others: {DEFAULT_DDIM_STEPS}); heun makes 2 network "
                        "calls per step (for an ε-model: but the last), and the printout states the NFE")
    p.add_argument("--spacing", choices=get_args(SolverSpacing), default=None,
                   help="which timesteps the steps visit (default uniform; karras: Karras et al. 2022's σ spacing, "
                        "for euler, heun and dpmpp2m)")
    p.add_argument("--eta", type=non_negative_float, default=0.0,
                   help="DDIM η (0 deterministic, 1 DDPM-like); the ODE solvers take only 0")
    p.add_argument("--variance-type", choices=get_args(VarianceType), default=None,
                   help="DDPM variance (default: learned_range for learned-variance models, else fixed_small)")
    p.add_argument("--labels", default=None, help="'all' cycles through the classes; K samples class K only")
    p.add_argument("--guidance-scale", type=finite_float, default=1.0, help="s in ε_u + s(ε_c − ε_u)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per sampling batch")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA ones")
    p.add_argument("--no-clip", action="store_true", help="do not clip x̂_0 to [-1, 1] (the flow samplers never clip)")
    p.add_argument("--flow-shift", type=positive_float, default=None,
                   help="flow-matching checkpoints: shift the uniform grid in t, t = s·u/(1 + (s−1)·u) (SD3); s > 1 "
                        "puts more steps near the noise (default 1)")
    p.add_argument("--precision", choices=get_args(Precision), default="fp32",
                   help="run the network under autocast: bf16 is faster on GPUs and CPUs with AMX / AVX-512-BF16 "
                        "and emulated (much slower) elsewhere; auto picks bf16 where it is native, else fp32")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.  With ``--config FILE`` and/or ``train --preset NAME`` the command
    line is parsed again with their values as the defaults, so that flags given with them still
    win: flags, then the file, then the preset, then the dataclass defaults.  ``args.given`` is
    the set of options given on the command line or in the file (what ``--resume`` may change)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    command = parser.subcommands[args.command]
    args.given = {command._option_string_actions[token.split("=")[0]].dest for token in argv
                  if token.split("=")[0] in command._option_string_actions}
    config_file = getattr(args, "config", None)
    if config_file or getattr(args, "preset", None):
        given = args.given
        args, from_file = _parse_with_defaults(args, argv, config_file)
        args.given = given | set(from_file)
    if args.command == "sample":   # required, but they may come from --config, which argparse cannot see
        for name in ("checkpoint", "out"):
            if getattr(args, name) is None:
                command.error(f"--{name} is required (as a flag, or as {name} = ... in --config)")
    return args


def _parse_with_defaults(args: argparse.Namespace, argv: list[str], config_file: str | None) -> tuple[argparse.Namespace, dict]:
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
    return parser.parse_args(argv), from_file


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from . import commands
    from .checkpoint import CheckpointError

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # `kill` stops a training run as Ctrl-C does (at the end of its step, saved)
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        args = parse_args(argv)
        handler = {"train": commands.cmd_train, "sample": commands.cmd_sample, "evaluate": commands.cmd_evaluate,
                   "train-classifier": commands.cmd_train_classifier, "export": commands.cmd_export,
                   "train-autoencoder": commands.cmd_train_autoencoder, "data": commands.cmd_data}[args.command]
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError, CheckpointError, FloatingPointError) as err:
        # user errors (bad input, missing data, bad checkpoints, outputs that cannot be written)
        # print as one line, not a traceback, and exit with 2
        message = str(err)
        if isinstance(err, OSError) and err.strerror:      # not "[Errno 28] ...": the reason, and the file
            message = err.strerror + (f": {err.filename}" if err.filename else "")
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
