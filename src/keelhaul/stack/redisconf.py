"""Redis' command line, one for every shape of the stack. Pure.

(A Redis the stack does not run, ``redis_url``, is :mod:`.redisurl`.)
"""

from __future__ import annotations

from keelhaul.stack.plan import HOST, StackPlan

__all__ = ["redis_argv"]


def redis_argv(binary: str, plan: StackPlan, *, directory: str | None = None) -> list[str]:
    """No persistence at all; the LRU limit keeps a long benchmark from eating the host.

    On loopback (the local stack) protected mode stays on; in a container it is off: it
    refuses non-loopback clients without a password, and the network is internal to the
    stack (compose) or closed by a NetworkPolicy (Kubernetes).
    """
    protected = "yes" if plan.bind_host == HOST else "no"
    argv = [
        binary,
        "--bind", plan.bind("redis").rpartition(":")[0],
        "--port", str(plan.ports["redis"]),
        "--protected-mode", protected,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--maxmemory", "256mb",
        "--maxmemory-policy", "allkeys-lru",
    ]  # fmt: skip
    if directory is not None:
        argv += ["--dir", directory]
    return argv
