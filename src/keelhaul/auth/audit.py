"""One JSON line per token request: who, from where, asked for what, got what, how fast.

Secrets never reach this module: it is handed names, scopes and outcomes only.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Mapping

from keelhaul.auth.settings import AuditSettings

__all__ = ["AuditLog"]


class AuditLog:
    def __init__(self, settings: AuditSettings) -> None:
        self.enabled = settings.enabled
        # A private logger object: not registered globally, so several apps can coexist.
        self._logger = logging.Logger("keelhaul.audit", level=logging.INFO)
        handler: logging.Handler
        if settings.path is not None:
            settings.path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.WatchedFileHandler(settings.path, encoding="utf-8")
        else:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(handler)
        self._handler = handler

    def record(self, fields: Mapping[str, object]) -> None:
        if self.enabled:
            self._logger.info(json.dumps(fields, separators=(",", ":"), default=str))

    def close(self) -> None:
        self._handler.close()
