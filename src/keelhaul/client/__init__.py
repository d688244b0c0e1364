"""The registry client: protocol core shared by the CLI and the load kit, and test images.

:func:`write_image` (in :mod:`.layout`) writes deterministic OCI image layouts.
"""

from __future__ import annotations

from keelhaul.client.layout import BuiltImage, build_image, write_image

__all__ = ["BuiltImage", "build_image", "write_image"]
