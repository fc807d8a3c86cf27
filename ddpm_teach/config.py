"""Config files for the command line: ``python -m ddpm_teach train --config run.toml`` (and
``sample --config``, ``evaluate --config``).

A config file holds the same options as the flags, with the flag's name as the key
(``base_channels`` or ``base-channels`` for ``--base-channels``)::

    # configs/fashion_mnist_small.toml
    dataset = "fashion_mnist"
    steps = 5000
    base_channels = 32
    channel_mults = [1, 2, 2]

Precedence: flags given on the command line, then the config file, then ``--preset`` (a file may
name one with ``preset = "cpu-fast"``), then the dataclass defaults.  TOML is read with the
standard library's ``tomllib`` (``tomli`` on Python 3.10); YAML (``.yaml``/``.yml``) too if PyYAML
is installed.  An unknown key is an error that names the nearest valid key.  ``train`` writes the
resolved config of each run next to its checkpoint (``{out_dir}/config.toml``), so that a run can
be repeated with ``--config`` from it.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
from pathlib import Path

from .files import atomic_write

__all__ = ["ConfigFileError", "read_config_file", "config_defaults", "to_toml", "write_run_config"]


class ConfigFileError(ValueError):
    """A config file that cannot be read, or holds a key or value the command does not take."""


def read_config_file(path: str | os.PathLike) -> dict:
    """The key-value table of a ``.toml`` (or, with PyYAML, ``.yaml``/``.yml``) file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"--config {str(path)!r} does not exist; give the path of a .toml file (see configs/).")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigFileError(f"--config {path.name}: reading YAML needs PyYAML (pip install pyyaml), "
                                  "or write the file as TOML.") from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigFileError(f"--config {path.name} is not valid YAML: {str(err).splitlines()[0]}") from None
    elif path.suffix == ".toml":
        try:
            import tomllib
        except ImportError:                      # Python 3.10
            import tomli as tomllib
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigFileError(f"--config {path.name} is not valid TOML: {err}") from None
    else:
        raise ConfigFileError(f"--config {path.name}: the file must end in .toml (or .yaml / .yml with PyYAML).")
    if not isinstance(values, dict):
        raise ConfigFileError(f"--config {path.name} must hold a table of keys and values, not a {type(values).__name__}.")
    return values


def _convert(action: argparse.Action, value, where: str):
    """``value`` from a file, checked and converted as argparse would convert the flag's text."""
    flag = action.option_strings[-1] if action.option_strings else action.dest
    if value is None:
        if action.default is not None:
            raise ConfigFileError(f"{where}: {action.dest} cannot be empty (the flag {flag} needs a value).")
        return None
    if isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction)):
        if not isinstance(value, bool):
            raise ConfigFileError(f"{where}: {action.dest} must be true or false, got {value!r}.")
        return value
    if action.nargs == "+":
        if not isinstance(value, list) or not value:
            raise ConfigFileError(f"{where}: {action.dest} must be a non-empty list, e.g. [1, 2, 2], got {value!r}.")
        return [_convert_one(action, item, where) for item in value]
    return _convert_one(action, value, where)


def _convert_one(action: argparse.Action, value, where: str):
    kind = action.type or str
    base = getattr(kind, "__name__", "")              # the command line's checked types are named int/float
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "str": isinstance(value, str)}.get(base, True)
    if not ok:
        raise ConfigFileError(f"{where}: {action.dest} must be {base}, got {value!r}.")
    try:
        value = kind(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
        raise ConfigFileError(f"{where}: {action.dest}: {err}") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigFileError(f"{where}: {action.dest} must be one of {list(action.choices)}, got {value!r}.")
    return value


def config_defaults(parser: argparse.ArgumentParser, values: dict, source: str, *,
                    also: frozenset[str] = frozenset()) -> dict:
    """Check a config file's ``values`` against ``parser``'s options and convert them: the
    result is what ``parser.set_defaults`` takes, so that flags given as well still win.
    ``also`` names keys handled by the caller (e.g. ``preset``)."""
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    where = f"--config {Path(source).name}"
    converted = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key in also:
            converted[key] = value
            continue
        if key not in actions:
            nearest = difflib.get_close_matches(key, list(actions) + sorted(also), n=1, cutoff=0.5)
            hint = f"did you mean {nearest[0]!r}?" if nearest else f"see `python -m ddpm_teach {parser.prog.split()[-1]} --help`."
            raise ConfigFileError(f"{where}: unknown key {raw_key!r}; {hint}")
        converted[key] = _convert(actions[key], value, where)
    return converted


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))            # a TOML basic string: JSON's escapes are TOML's


def to_toml(values: dict, header: str = "") -> str:
    """``values`` (str, int, float, bool and lists of them; None is left out) as TOML text."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


def write_run_config(path: str | os.PathLike, values: dict, command: str = "train") -> Path:
    """Write the resolved options of a run as TOML (atomically), for ``--config`` to repeat it."""
    header = (f"The resolved options of this run. Repeat it with:\n"
              f"  python -m ddpm_teach {command} --config {path}")
    text = to_toml(values, header)
    return atomic_write(path, lambda f: f.write(text), binary=False)
