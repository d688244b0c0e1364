"""Loading validated, frozen settings from a YAML file plus ``KEELHAUL_<PART>_*`` variables.

Each component declares a pydantic model (frozen, ``extra="forbid"``) and calls
:func:`load`. Environment variables override the file: ``KEELHAUL_AUTH_TOKEN__ISSUER=x``
sets ``token.issuer`` (``__`` separates nesting levels, names are case-insensitive).
Validation problems become one :class:`~keelhaul.errors.ConfigError` whose lines name
the dotted key and say what is wrong, never echoing a secret value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from keelhaul.errors import ConfigError

__all__ = ["FrozenModel", "env_overrides", "load", "read_yaml", "validation_problems"]

M = TypeVar("M", bound=BaseModel)


class FrozenModel(BaseModel):
    """Base for every settings model: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def read_yaml(path: Path, component: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(component, [f"config file {path} does not exist"]) from None
    except OSError as exc:
        raise ConfigError(
            component, [f"config file {path} cannot be read: {exc.strerror}"]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(component, [f"config file {path} is not valid YAML{where}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(component, [f"config file {path} must hold a mapping at the top level"])
    return data


def _env_value(raw: str) -> Any:
    stripped = raw.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def env_overrides(prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """``{prefix}A__B=v`` → ``{"a": {"b": v}}``; lists and maps may be given as JSON."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.upper().startswith(prefix) or name.upper() == prefix + "CONFIG":
            continue
        parts = [p.lower() for p in name[len(prefix) :].split("__") if p]
        if not parts:
            continue
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[parts[-1]] = _env_value(raw)
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/configuration.md)"
        elif err["type"] == "missing":
            msg = "is required"
        problems.append(f"{key}: {msg}")
    return problems


def load(
    model: type[M],
    component: str,
    *,
    path: Path | None = None,
    data: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> M:
    """Build ``model`` from file ``path`` (or ``data``), overridden by the environment."""
    env = os.environ if environ is None else environ
    prefix = f"KEELHAUL_{component.upper()}_"
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path, component)
    if data is not None:
        raw = _merge(raw, data)
    raw = _merge(raw, env_overrides(prefix, env))
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(component, validation_problems(exc)) from None
