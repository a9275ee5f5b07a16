"""The numbers a user types (a timeout, a port), checked where they are read: one message saying what is accepted.

The CLI and the pytest plugin both read these; each puts the option's own name in front.
"""

from __future__ import annotations

#: The longest wait a timeout may ask for: a day. Past it a float stops being a usable deadline
#: (``inf`` never ends, ``1e308`` overflows the kernel's timeouts) and no etcd takes that long.
MAX_TIMEOUT = 86400.0


def timeout_seconds(text: str) -> float:
    """``text`` as a timeout in seconds; ValueError, saying what is accepted, for nan, inf, 0 or too long."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds: give seconds above 0, up to {MAX_TIMEOUT:g}") from None
    return usable_timeout(value, shown=text)


def usable_timeout(value: float, *, shown: str | None = None) -> float:
    """``value`` if it is a usable timeout in seconds; ValueError, saying what is accepted, otherwise."""
    if not 0 < value <= MAX_TIMEOUT:  # nan compares false, so it lands here too
        shown = f"{value!r}" if shown is None else shown
        raise ValueError(f"{shown} is not a usable timeout: give seconds above 0, up to {MAX_TIMEOUT:g} (a day)")
    return value


def port_number(text: str) -> int:
    """``text`` as a TCP port, 1-65535; ValueError, saying what is accepted, otherwise."""
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a TCP port: give a number 1-65535") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is not a TCP port: give 1-65535")
    return port
