"""The registry client: one protocol core for the CLI and the load kit, and test images.

::

    pure core (no I/O)          challenge  tokens  media  digest  upload  paging  reference
                                failures  images  blobs  transport (the seam)
    operations, written once    session (request loop, auth)  blob_upload  registry
                                (RegistryClient)  transfer (whole images, in parallel)
    I/O shells                  httpx_transport  locust_transport  layout  blobfiles
                                credentials  progress

Import :class:`~keelhaul.client.locust_transport.LocustTransport` from its own module: it
imports Locust, which monkey-patches the process with gevent.
"""

from __future__ import annotations

from keelhaul.client.blobs import BytesSink, BytesSource, DiscardSink
from keelhaul.client.images import BuiltImage, ImageSpec, build_image
from keelhaul.client.layout import LayoutWriter, read_layout, write_image
from keelhaul.client.media import Platform, parse_platform
from keelhaul.client.reference import Reference, parse_reference, parse_repository
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials
from keelhaul.client.transfer import PullResult, PushResult

__all__ = [
    "BuiltImage",
    "BytesSink",
    "BytesSource",
    "Credentials",
    "DiscardSink",
    "ImageSpec",
    "LayoutWriter",
    "Platform",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryClient",
    "build_image",
    "parse_platform",
    "parse_reference",
    "parse_repository",
    "read_layout",
    "write_image",
]
