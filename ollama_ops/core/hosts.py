"""Server addresses, resolved exactly like Ollama's `envconfig.Host()` (pure).

Ollama reads OLLAMA_HOST as `[scheme://]host[:port][/path]`: the scheme defaults to http, the port to 11434
without a scheme (80/443 with http/https), a bare IP or name gets the default port, an unparsable port falls
back to the default, and an empty host (":8080") means all interfaces for the server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PORT = 11434


@dataclass(frozen=True)
class HostAddress:
    scheme: str
    host: str  # as the server binds it ("" = all interfaces); IPv6 without brackets
    port: int
    path: str = ""

    @property
    def bind(self) -> str:
        """The OLLAMA_HOST value that makes `ollama serve` listen here."""
        return f"{self.scheme}://{_join(self.host, self.port)}" + (f"/{self.path}" if self.path else "")

    @property
    def connect_host(self) -> str:
        """Where a client on this machine connects: all-interfaces binds are reached over loopback."""
        if self.host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host

    @property
    def base_url(self) -> str:
        url = f"{self.scheme}://{_join(self.connect_host, self.port)}"
        return url + (f"/{self.path}" if self.path else "")

    @property
    def is_loopback(self) -> bool:
        """True when the server listens on loopback only (not reachable from other machines)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def is_local(self) -> bool:
        """True when the address names this machine (loopback or all-interfaces)."""
        return self.is_loopback or self.host in ("", "0.0.0.0", "::")

    def __str__(self) -> str:
        return self.base_url


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: 'h:p', '[v6]:p', ':p'; None when there is no port part."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport[end + 1:].startswith(":"):
            return None
        return hostport[1:end], hostport[end + 2:]
    if hostport.count(":") != 1:
        return None
    host, port = hostport.split(":")
    return host, port


def parse_host(value: str | None) -> HostAddress:
    """Resolve an OLLAMA_HOST-style string to an address, as Ollama itself does."""
    text = (value or "").strip()
    default_port = str(DEFAULT_PORT)
    scheme, sep, hostport = text.partition("://")
    if not sep:
        scheme, hostport = "http", text
        if text == "ollama.com":
            scheme, hostport = "https", "ollama.com:443"
    elif scheme == "http":
        default_port = "80"
    elif scheme == "https":
        default_port = "443"
    hostport, _, path = hostport.partition("/")
    split = _split_host_port(hostport)
    if split is None:
        host, port = "127.0.0.1", default_port
        try:
            host = str(ipaddress.ip_address(hostport.strip("[]")))
        except ValueError:
            if hostport:
                host = hostport
    else:
        host, port = split
    try:
        port_num = int(port, 10)
        if not 0 <= port_num <= 65535:
            raise ValueError
    except ValueError:
        port_num = int(default_port)
    return HostAddress(scheme=scheme, host=host, port=port_num, path=path)
