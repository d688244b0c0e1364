"""Container engines on this host: a private ``dockerd`` and the images the reference stack
runs in, built from Debian packages (``make images``).

::

    dockerd.py   Dockerd: private socket, data root (the image cache), exec root, pidfile
    images.py    the base image (debootstrap + docker import) and the tier images, cached
    __main__.py  ``python -m keelhaul.engine``: what ``make images`` runs
"""

from __future__ import annotations

from keelhaul.engine.dockerd import DOCKER, Dockerd, running_dockerd

__all__ = ["DOCKER", "Dockerd", "running_dockerd"]
