"""Run RegistryClient over Locust's FastHttpSession in a Locust Environment; print the stats.

Run as a subprocess by ``test_client_locust.py``: importing Locust monkey-patches the whole
process with gevent, which must not happen inside the pytest process.

Usage: ``python locust_client_probe.py REGISTRY USER PASSWORD REPO`` (REGISTRY host:port,
plain HTTP). Prints one JSON document: ``{"stats": {...}, "pull": {...}, "push": {...}}``.
"""

from __future__ import annotations

import json
import sys

from locust.contrib.fasthttp import FastHttpSession  # first: patches the process
from locust.env import Environment

from keelhaul.client.images import build_image
from keelhaul.client.locust_transport import LocustTransport
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials


def main(registry: str, user: str, password: str, repo: str) -> int:
    env = Environment(user_classes=[])
    runner = env.create_local_runner()
    try:
        session = FastHttpSession(
            base_url=f"http://{registry}", request_event=env.events.request, user=None
        )
        client = RegistryClient(
            LocustTransport(session),
            registry,
            credentials=Credentials(user, password, source="probe"),
            plain_http=True,
            parallel=1,
            monolithic_max=1 << 16,
        )
        image = build_image(layers=2, layer_size=300_000, seed=4242)
        pushed = client.push_image(repo, "probe", image)
        pulled = client.pull_image(repo, "probe", verify=True)
        try:
            client.pull_image(repo, "no-such-tag")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            missing = type(exc).__name__
        else:
            missing = "none"
        stats = {
            f"{entry.method} {entry.name}": {
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "bytes": entry.total_content_length,
                "max_ms": entry.max_response_time,
            }
            for entry in env.stats.entries.values()
        }
        document = {
            "stats": stats,
            "push": pushed.as_dict(),
            "pull": pulled.as_dict(),
            "layer_sizes": [len(b) for b in image.layer_data()],
            "missing": missing,
        }
        print(json.dumps(document))
    finally:
        runner.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
