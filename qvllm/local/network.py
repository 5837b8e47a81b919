"""Addresses for the local stack: where the gateway listens and the URL a phone can open."""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK = "127.0.0.1"
ALL_INTERFACES = ("0.0.0.0", "::")  # noqa: S104 - listening on the LAN is the point of --host
# A TEST-NET-1 address (RFC 5737): connecting a UDP socket to it picks the outgoing interface
# from the routing table without sending a packet.
_ROUTE_PROBE = ("192.0.2.1", 9)


class AddressError(ValueError):
    """The ``--host`` value is not usable; the message says why and what to pass instead."""


def lan_address() -> str:
    """This machine's address on its default route (what a phone on the same network reaches).

    Raises:
        AddressError: no non-loopback IPv4 address was found.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(_ROUTE_PROBE)
            address = sock.getsockname()[0]
    except OSError:
        address = ""
    if not address or ipaddress.ip_address(address).is_loopback or address == "0.0.0.0":  # noqa: S104
        raise AddressError("found no LAN address on this machine: pass --host with the address to listen on")
    return address


def check_host(host: str) -> str:
    """``host`` if it is an IP address this stack can listen on.

    Raises:
        AddressError: not an IP address (a name would hide which interface is used).
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise AddressError(f"{host!r} is not an IP address (use 127.0.0.1, 0.0.0.0 or a LAN address)") from None
    return host


def local_url(host: str, port: int) -> str:
    """The URL tools on this machine use for a server listening on ``host:port``."""
    target = LOOPBACK if host in ALL_INTERFACES else host
    return f"http://{_bracket(target)}:{port}"


def public_url(host: str, port: int) -> str:
    """The URL for the audience (and the QR code): the LAN address when listening on all interfaces.

    Raises:
        AddressError: ``host`` is all interfaces and no LAN address was found.
    """
    target = lan_address() if host in ALL_INTERFACES else host
    return f"http://{_bracket(target)}:{port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
