"""The product's names and small vocabularies, written once, with no dependency. Pure.

**Vocabularies.** ``keelhaul --help`` must not import pydantic or the stack, yet its choices
must be the ones the settings validate; both read these literals (``typing.get_args``), so
they cannot drift.

**Repository names.** distribution's ``reference`` grammar (and the token spec's ``resourcename``)::

    name          := [ hostname '/' ] component [ '/' component ]*
    hostname      := hostcomponent [ '.' hostcomponent ]* [ ':' port-number ]
    hostcomponent := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    component     := alpha-numeric [ separator alpha-numeric ]*
    separator     := /[_.]|__|[-]*/

The token service's scope parser (:mod:`keelhaul.auth.scopes`), the client's image
references (:mod:`keelhaul.client.reference`) and the load kit's settings use these
patterns. Each part has one way to match and is possessive (``++``, ``*+``), so a name that
fails costs one pass, not a backtracking search; the spec's separator ``[-]*`` may be empty,
which only glues alpha-numerics together, so ``-++`` says the same without the ``(a+)+``
shape that backtracks exponentially.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

__all__ = [
    "COMPONENT",
    "COMPONENTS",
    "COMPONENT_RE",
    "HOSTNAME",
    "HOSTNAME_RE",
    "NAME",
    "WORKER_CLASSES",
    "ComponentName",
    "WorkerClass",
    "is_repository_path",
]

WorkerClass = Literal["gevent", "sync", "gthread"]
"""gunicorn worker classes the token service runs."""

ComponentName = Literal[
    "redis",
    "auth",
    "registry",
    "registry_debug",
    "nginx",
    "nginx_status",
    "node_exporter",
    "process_exporter",
    "nginx_exporter",
    "redis_exporter",
    "prometheus",
]
"""Names of the ports a stack listens on: ``registry_debug`` is the registry's debug server,
``nginx`` the entry point every client uses, ``nginx_status`` its loopback-only status page;
the last five only with ``--monitoring``."""

WORKER_CLASSES: tuple[str, ...] = get_args(WorkerClass)
COMPONENTS: tuple[str, ...] = get_args(ComponentName)

HOST_COMPONENT = r"[a-zA-Z0-9]++(?:-++[a-zA-Z0-9]++)*+"
HOSTNAME = rf"{HOST_COMPONENT}(?:\.{HOST_COMPONENT})*+(?::[0-9]++)?+"
COMPONENT = r"[a-z0-9]++(?:(?:__|[_.]|-++)[a-z0-9]++)*+"
NAME = rf"(?:{HOSTNAME}/)?{COMPONENT}(?:/{COMPONENT})*"
"""A whole repository name, an optional ``hostname[:port]/`` first."""

COMPONENT_RE = re.compile(COMPONENT)
HOSTNAME_RE = re.compile(HOSTNAME)


def is_repository_path(path: str) -> bool:
    """Whether ``path`` is ``component[/component]*`` (no hostname)."""
    return bool(path) and all(COMPONENT_RE.fullmatch(part) for part in path.split("/"))
