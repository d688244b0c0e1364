"""``python -m keelhaul.engine [--cache DIR]``: what ``make images`` runs.

Starts a private dockerd on ``CACHE/docker`` (the image cache), builds what is missing
(:func:`keelhaul.engine.images.build_images`), prints the time of each image, stops the
daemon by pid. A failure is one message and exit 3, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from keelhaul.engine.dockerd import running_dockerd
from keelhaul.engine.images import DEFAULT_CACHE, ImageNames, build_images, data_root
from keelhaul.errors import KeelhaulError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keelhaul.engine", description=__doc__)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="[%(default)s]")
    args = parser.parse_args(argv)
    names = ImageNames()

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    try:
        with running_dockerd(data_root(args.cache)) as daemon:
            report = build_images(daemon, cache=args.cache, names=names, say=say)
    except KeelhaulError as exc:
        print(f"make images: {exc}", file=sys.stderr)
        return exc.exit_code
    for label, seconds in report.seconds.items():
        state = " (cached)" if label in report.cached else ""
        print(f"{names.tier(label):<40} {seconds:>7.1f} s{state}")
    print(
        f"images ready in {time.monotonic() - t0:.1f} s; daemon data root {data_root(args.cache)}"
    )
    print(f"render with: keelhaul stack render {' '.join(names.render_options())} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
