"""keelhaul: run a private Docker/OCI registry fast and safely.

Parts (one package each): ``auth`` (the token service), ``client`` (registry
protocol core and CLI), ``load`` (Locust load kit), ``stack`` (the reference
stack), ``diagnose`` (which tier limits throughput).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
