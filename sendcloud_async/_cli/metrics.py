"""``--metrics HOST:PORT`` of the long-running commands: the option and its value.

Light on purpose (``--help`` loads it): the server itself is ``metrics_server``,
imported when a command with ``--metrics`` runs.
"""

from __future__ import annotations

import argparse
from typing import Final, NamedTuple

__all__ = ["DEFAULT_METRICS_HOST", "MetricsAddress", "metrics_address", "metrics_option"]

#: Where ``--metrics PORT`` (no host) listens: this machine only.
DEFAULT_METRICS_HOST: Final = "127.0.0.1"


class MetricsAddress(NamedTuple):
    """Where the metrics page listens (port 0: one the system picks, logged at start)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def metrics_address(text: str) -> MetricsAddress:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` (then on 127.0.0.1)."""
    host, colon, port_text = text.strip().rpartition(":")
    if not colon:
        host, port_text = "", text.strip()
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"not HOST:PORT with a port from 0 to 65535: {text!r}"
        ) from None
    if any(c.isspace() or c in "/[]@" for c in host) or (":" in host and not bracketed):
        raise argparse.ArgumentTypeError(
            f"not a host name or address (an IPv6 address goes in brackets): {host!r}"
        )
    return MetricsAddress(host or DEFAULT_METRICS_HOST, int(port_text))


def metrics_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--metrics HOST:PORT`` (in its own group) to a long-running command."""
    group = parser.add_argument_group("monitoring")
    group.add_argument(
        "--metrics",
        type=metrics_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics, and /healthz and /readyz "
        f"(PORT alone: on {DEFAULT_METRICS_HOST}; 0: any free port, logged at start)",
    )
