"""The reference stack: nginx in front of the registry and the token service, with Redis.

``Stack(dir, settings).up()`` starts it on loopback, ``.status()`` probes it, ``.down()``
stops it; ``keelhaul stack up|status|down`` is the command-line face of the same class.
:mod:`.doctor` checks a stack's configs against each other; :mod:`.render` writes the
same stack as compose and Kubernetes artifacts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keelhaul.stack.settings import StackSettings, load_stack_settings
    from keelhaul.stack.stack import DownReport, Stack, StackStatus
    from keelhaul.stack.state import StackState

# Resolved on first use (PEP 562): importing a light submodule such as
# ``keelhaul.stack.layout`` must not pull in the signing code (jwt, and with it ssl)
# before a process entry point has had its chance to monkey-patch for gevent.
_LAZY = {
    "StackSettings": "keelhaul.stack.settings",
    "load_stack_settings": "keelhaul.stack.settings",
    "DownReport": "keelhaul.stack.stack",
    "Stack": "keelhaul.stack.stack",
    "StackStatus": "keelhaul.stack.stack",
    "StackState": "keelhaul.stack.state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DownReport",
    "Stack",
    "StackSettings",
    "StackState",
    "StackStatus",
    "load_stack_settings",
]
