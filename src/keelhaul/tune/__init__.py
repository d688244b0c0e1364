"""``keelhaul tune``: the field report's journey in one command.

Measure, diagnose, change the knob the verdict points at, measure again; keep a change only
when it beats the run-to-run noise, revert it otherwise; stop when nothing server-side
limits the stack, when the host's CPUs do, or when no recommendation is left.

``moves`` (pure: which knob answers which verdict; never a security knob), ``journey``
(pure: goals, noise, keep or revert, the steps), ``measure`` (one load + diagnosis run, as
a subprocess), ``session`` (the loop on a local stack; once, not applied, on a remote one),
``report`` (table, ``keelhaul.tune/v1`` JSON, HTML, the tuned settings).
"""
