"""The floor for ``make bench-load``: a bare Locust FastHttpUser, one process.

Each iteration is the same GETs ``keelhaul load --mix pull-reuse`` makes for one image (the
manifest by tag, then each blob), with a fixed bearer token in a header and nothing else:
no registry protocol, no challenge handling, no verification, no statistics beyond
Locust's own. Run by ``bench/load_bench.py`` as a subprocess (Locust monkey-patches the
process); prints ``running`` on stderr when the users start and one JSON line on stdout at
the end.

Usage: ``python load_bare.py BASE_URL REPO TAG BLOB_DIGEST[,BLOB_DIGEST...] USERS SECONDS``
with the bearer token in ``$BENCH_TOKEN``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import gevent
from locust import FastHttpUser, constant, task  # first: patches the process
from locust.env import Environment

MANIFEST_ACCEPT = ",".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def main(base: str, repo: str, tag: str, blobs: str, users: int, seconds: float) -> int:
    auth = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
    manifest_headers = {**auth, "Accept": MANIFEST_ACCEPT}
    digests = blobs.split(",")

    class Bare(FastHttpUser):
        host = base
        wait_time = constant(0)

        @task
        def pull(self) -> None:
            self.client.get(
                f"/v2/{repo}/manifests/{tag}", headers=manifest_headers, name="manifest GET"
            )
            for digest in digests:
                self.client.get(f"/v2/{repo}/blobs/{digest}", headers=auth, name="blob GET")

    env = Environment(user_classes=[Bare])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    print("running", file=sys.stderr, flush=True)
    started = time.monotonic()
    gevent.sleep(seconds)
    runner.stop()
    elapsed = time.monotonic() - started
    total = env.stats.total
    print(
        json.dumps(
            {
                "requests": total.num_requests,
                "failures": total.num_failures,
                "seconds": elapsed,
                "p50_ms": total.get_response_time_percentile(0.5),
                "p99_ms": total.get_response_time_percentile(0.99),
            }
        ),
        flush=True,
    )
    runner.quit()
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(main(a[0], a[1], a[2], a[3], int(a[4]), float(a[5])))
