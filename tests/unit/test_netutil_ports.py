"""Port picking for the stack: distinct ports even when the OS has few to give, and a clear
error (never a traceback) when it has none."""

from __future__ import annotations

import errno

import pytest

from keelhaul.errors import StackError
from keelhaul.netutil import port_picker
from keelhaul.stack.plan import choose_ports, pick_distinct
from keelhaul.stack.settings import StackSettings, wanted_components

pytestmark = pytest.mark.unit


def test_a_picker_never_gives_the_same_port_twice_while_its_block_lasts() -> None:
    with port_picker() as pick:
        ports = [pick() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_every_component_gets_its_own_port() -> None:
    with port_picker() as pick:
        ports = choose_ports(StackSettings(monitoring=True), pick)
    assert set(ports) == set(wanted_components(StackSettings(monitoring=True)))
    assert len(set(ports.values())) == len(ports)


def test_an_os_that_keeps_giving_one_port_is_a_clear_stack_error() -> None:
    """What a plain bind-and-close picker did after a benchmark left ~28,000 loopback
    connections in TIME_WAIT: the same few ports came back every time."""
    with pytest.raises(StackError) as caught:
        choose_ports(StackSettings(), lambda: 40000)
    assert "no free TCP port" in str(caught.value) and "TIME_WAIT" in str(caught.value)


def test_no_port_at_all_is_a_clear_stack_error() -> None:
    def exhausted() -> int:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    with pytest.raises(StackError) as caught:
        pick_distinct(exhausted, set(), "registry")
    assert str(caught.value).startswith("registry: no free TCP port on 127.0.0.1")
    assert "Address already in use" in str(caught.value)
