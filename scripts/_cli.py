"""Build an argparse parser from a frozen config dataclass: each field a flag, its docstring the help.

CleanRL's "the docs become ``--help``", without tyro: a field ``num_layers: int = 6`` followed by
a one-line docstring becomes ``--num-layers N`` with that line as help.

- ``bool`` fields get ``--flag/--no-flag``;
- ``dict[str, Any]`` fields take ``KEY=VALUE`` pairs, each value read as a Python literal when it
  is one (``3``, ``0.5``, ``True``, ``(1, 2)``, ``None``) and as a string otherwise;
- ``X | None`` fields take an ``X``.

Flags the user did not give are absent from the parsed namespace, so a script can tell a given
value from a default (``--resume`` checks given flags against the saved run).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import subprocess
import textwrap
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from nas_env.errors import DatasetError, NASEnvError, check_choice

TIME_BUDGET_CAP = 10_000
"""Architectures a run with a ``--time-budget`` and no ``--budget`` may evaluate at most."""


class UsageError(ValueError):
    """A bad command line; the scripts report it as one line before any work."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``prog: error: message (see --help)``."""

    def error(self, message: str) -> NoReturn:
        """Print one line to stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (first paragraph, joined into one line)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            first = inspect.cleandoc(following.value.value).split("\n\n")[0]
            docs[node.target.id] = " ".join(first.split())
    return docs


def parse_key_values(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a=1", "b=x"]`` into ``{"a": 1, "b": "x"}`` (values read as Python literals when possible).

    Raises:
        ValueError: An item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        try:
            value: Any = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip()] = value
    return out


def _key_values(text: str) -> tuple[str, Any]:
    """Argparse ``type`` for one ``KEY=VALUE`` item."""
    try:
        [(key, value)] = parse_key_values([text]).items()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return key, value


def _base_type(hint: Any) -> Any:
    """``int`` for ``int | None``; the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, exclude: Sequence[str] = ()) -> None:
    """Add one flag per field of dataclass ``cls`` (except ``exclude``), with ``SUPPRESS`` defaults."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = docs.get(f.name, "")
        if default is not None and hint is not dict and typing.get_origin(hint) is not dict:
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif hint is dict or typing.get_origin(hint) is dict:
            kwargs.update(nargs="*", type=_key_values, metavar="KEY=VALUE")
        elif hint in (int, float, str):
            kwargs["type"] = hint
            kwargs["metavar"] = f.name.upper()
        else:
            raise TypeError(f"field {f.name!r} of {cls.__name__} has unsupported type {hints[f.name]!r}")
        parser.add_argument(flag, dest=f.name, **kwargs)


def given_values(namespace: argparse.Namespace) -> dict[str, Any]:
    """The flags the user gave (``KEY=VALUE`` lists turned into dicts)."""
    out = {}
    for key, value in vars(namespace).items():
        if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            value = dict(value)
        out[key] = value
    return out


def env_parameters(env: str) -> tuple[str, dict[str, inspect.Parameter]]:
    """The id (``module:Id`` imports ``module`` first) and its constructor's parameters.

    Raises:
        UsageError: An unknown id (with a "did you mean") or a module that does not import.
    """
    module, _, env_id = env.rpartition(":")
    try:
        if module:  # gym's "module:EnvId" form: importing the module registers the id
            importlib.import_module(module)
        spec = gym.spec(env_id)
    except (gym.error.Error, ImportError) as exc:
        raise UsageError(f"--env {env!r}: {exc}") from exc
    creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(str(spec.entry_point))
    params = dict(inspect.signature(creator).parameters)
    params.pop("self", None)
    return env_id, params


def make_env(env: str, env_kwargs: dict[str, Any]) -> gym.Env[Any, Any]:
    """``gym.make`` for a command line: every problem becomes one :class:`UsageError` line.

    An unknown keyword is named as the bad key, with the allowed ones and a "did you mean"; a bad
    value keeps the env's own message.

    Raises:
        UsageError: A bad id, key or value.
        DatasetError: Data that cannot be found (or downloaded), with the env's own message.
    """
    env_id, params = env_parameters(env)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for key in env_kwargs:
            try:
                check_choice("--env-kwargs key", key, params)
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
    try:
        return gym.make(env_id, **env_kwargs)
    except DatasetError:
        raise  # not a usage error: the message says where the data was looked for and how to fix it
    except (TypeError, ValueError, NASEnvError) as exc:
        given = " ".join(f"{k}={v}" for k, v in env_kwargs.items())
        raise UsageError(f"--env {env} --env-kwargs {given}: {exc}") from exc


def git_commit() -> str:
    """The repository's commit, or "" outside a git checkout."""
    try:
        root = Path(__file__).resolve().parents[1]
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
