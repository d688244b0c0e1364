"""The local reference stack: Redis, the token service and the registry on loopback.

``Stack(dir, settings).up()`` starts it, ``.status()`` probes it, ``.down()`` stops it;
``keelhaul stack up|status|down`` is the command-line face of the same class.
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
