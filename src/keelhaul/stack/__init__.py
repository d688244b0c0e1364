"""The reference stack: nginx in front of the registry and the token service, with Redis.

``Stack(dir, settings).up()`` starts it on loopback, ``.status()`` probes it, ``.down()``
stops it; ``keelhaul stack up|status|down`` is the command-line face of the same class.
:mod:`.doctor` checks a stack's configs against each other; :mod:`.render` writes the
same stack as compose and Kubernetes artifacts.
"""

from __future__ import annotations

from keelhaul.stack.settings import StackSettings, load_stack_settings
from keelhaul.stack.stack import DownReport, Stack, StackStatus
from keelhaul.stack.state import StackState

__all__ = [
    "DownReport",
    "Stack",
    "StackSettings",
    "StackState",
    "StackStatus",
    "load_stack_settings",
]
