"""quanta.util.get_node_ip_address(): the IP address by which other machines reach this one.

It is the local address of the network interface that routes towards `address` (a UDP socket
is "connected" to it, which sends nothing), so it works without any cluster running. With no
route (an isolated machine), it is the address this host's name resolves to, else 127.0.0.1.
"""

from __future__ import annotations

import socket

_DEFAULT_TARGET = "8.8.8.8:53"


def get_node_ip_address(address=None):
    """This machine's IP address, as seen on the route to `address` ("host:port", default a
    public DNS server; nothing is sent to it)."""
    host, port = _split(address or _DEFAULT_TARGET)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            ip = s.getsockname()[0]
        if ip and not ip.startswith("0.") and ip != "::":
            return ip
    except OSError:
        pass
    try:
        ip = socket.gethostbyname(socket.gethostname())
        if not ip.startswith("127."):
            return ip
    except OSError:
        pass
    return "127.0.0.1"


def _split(address):
    if not isinstance(address, str):
        raise TypeError(f"address must be a 'host:port' string, got {type(address).__name__}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address must look like 'host:port' (e.g. '8.8.8.8:53'), got {address!r}")
    return host.strip("[]"), int(port)


__all__ = ["get_node_ip_address"]
