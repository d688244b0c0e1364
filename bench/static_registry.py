"""A registry made of static files, served by one nginx worker: the floor ``bench-load``
loads when it wants to know what the *load generator* can do.

It speaks just enough of the distribution API for a pull of one image: ``GET /v2/``
answers ``401`` with a bearer challenge unless an ``Authorization`` header is present;
``/token`` hands out a fixed token; the manifest (by tag, with ``Docker-Content-Digest``)
and the blobs are files. It checks nothing, so it answers in microseconds and the client
side's cost is what shows. Started and stopped by pid.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

from keelhaul.client.images import BuiltImage
from keelhaul.netutil import free_port, wait_for_port

__all__ = ["StaticRegistry"]


class StaticRegistry:
    def __init__(self, workdir: Path, repo: str, tag: str, image: BuiltImage) -> None:
        self.dir = workdir
        self.repo = repo
        self.tag = tag
        self.image = image
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _conf(self) -> str:
        manifest = self.image.images[0]
        realm = f"{self.url}/token"
        challenge = f'Bearer realm="{realm}",service="static"'
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
        return f"""
{user}
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {self.dir}/tmp;
  proxy_temp_path {self.dir}/tmp;
  fastcgi_temp_path {self.dir}/tmp;
  uwsgi_temp_path {self.dir}/tmp;
  scgi_temp_path {self.dir}/tmp;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{self.port};
    location = /v2/ {{
      default_type application/json;
      if ($http_authorization = "") {{
        add_header WWW-Authenticate '{challenge}' always;
        return 401 '{{"errors":[{{"code":"UNAUTHORIZED","message":"authentication required"}}]}}';
      }}
      return 200 '{{}}';
    }}
    location = /token {{
      default_type application/json;
      return 200 '{{"token":"static-token","expires_in":3600}}';
    }}
    location = /v2/{self.repo}/manifests/{self.tag} {{
      default_type {manifest.media_type};
      add_header Docker-Content-Digest {manifest.digest};
      alias {self.dir}/manifest.json;
    }}
    location /v2/{self.repo}/blobs/ {{
      default_type application/octet-stream;
      alias {self.dir}/blobs/;
    }}
  }}
}}
"""

    def start(self, nginx: str = "/usr/sbin/nginx") -> None:
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        (self.dir / "blobs").mkdir(exist_ok=True)
        (self.dir / "manifest.json").write_bytes(self.image.images[0].raw)
        for blob in self.image.images[0].blobs():
            (self.dir / "blobs" / blob.digest).write_bytes(self.image.data(blob.digest))
        conf = self.dir / "nginx.conf"
        conf.write_text(self._conf(), encoding="utf-8")
        self.proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_for_port("127.0.0.1", self.port, 10):
            self.stop()
            raise RuntimeError(f"nginx did not start; see {self.dir}/error.log")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)  # graceful: the worker exits with it
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
