"""Server addresses, resolved exactly like Ollama's `envconfig.Host()` (pure).

Ollama reads OLLAMA_HOST as `[scheme://]host[:port][/path]`: the scheme defaults to http, the port to 11434
without a scheme (80/443 with http/https), a bare IP or name gets the default port, an unparsable port falls
back to the default, and an empty host (":8080") means all interfaces for the server.

`parse_host` is that lenient reading (what the daemon itself will do with a value); `check_host` is the strict
one sollama applies to every address a person gives it: where Ollama would quietly fall back to the default
address (a port out of range, a stray colon), a typo would reach the shared daemon, so it is refused instead.
"""

from __future__ import annotations

import ipaddress
import re
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
        """Where a client on this machine connects: all-interfaces binds are reached over loopback (as
        Ollama's `ConnectableHost()`; an empty host, which Go's dialer takes as this machine, too)."""
        if self.host == "":
            return "127.0.0.1"
        if self.is_unspecified:
            return "::1" if ":" in (_parse_ip(self.host) or "") else "127.0.0.1"
        return self.host

    @property
    def is_unspecified(self) -> bool:
        """True for an all-interfaces address (0.0.0.0, ::, and their other spellings)."""
        ip = _parse_ip(self.host)
        return ip is not None and ipaddress.ip_address(ip).is_unspecified

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
        return self.is_loopback or self.host == "" or self.is_unspecified

    def __str__(self) -> str:
        return self.base_url


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: 'h:p', '[v6]:p', ':p'; None where Go returns an error."""
    colon = hostport.rfind(":")
    if colon < 0:
        return None  # missing port
    start, after = 0, 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != colon:
            return None  # missing ']', missing port, or too many colons
        host = hostport[1:end]
        start, after = 1, end + 1
    else:
        host = hostport[:colon]
        if ":" in host:
            return None  # too many colons
    if "[" in hostport[start:] or "]" in hostport[after:]:
        return None
    return host, hostport[colon + 1:]


# Go's strings.TrimSpace (unicode.IsSpace) differs from str.strip(): it keeps \x1c-\x1f.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"
_PORT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)  # what strconv.ParseInt(port, 10, 32) accepts


def _port_number(port: str) -> int | None:
    """The port's value where Go's ParseInt(port, 10, 32) accepts it ('+80', '080', '-0'), else None."""
    if not _PORT_RE.fullmatch(port):
        return None
    digits = port.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 6:  # far beyond 65535 (and int() refuses very long strings)
        return None
    return -int(digits) if port.startswith("-") else int(digits)


def _parse_ip(text: str) -> str | None:
    """Go's net.ParseIP(text).String(), or None (IPv4-mapped IPv6 prints as IPv4; no zones)."""
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_host(value: str | None) -> HostAddress:
    """Resolve an OLLAMA_HOST-style string to an address, as Ollama's `envconfig.Host()` does (including
    its `Var()`: surrounding spaces and quotes are dropped)."""
    text = (value or "").strip(_GO_SPACE).strip("\"'").strip(_GO_SPACE)
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
        ip = _parse_ip(hostport.strip("[]"))
        if ip is not None:
            host = ip
        elif hostport:
            host = hostport
    else:
        host, port = split
    port_num = _port_number(port)
    if port_num is None or not 0 <= port_num <= 65535:
        port_num = int(default_port)
    return HostAddress(scheme=scheme, host=host, port=port_num, path=path)


class HostError(ValueError):
    """An address that `check_host` refuses; the message says what is wrong with it."""


_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)", re.ASCII)
_SCHEMES = ("http", "https")


def _check_name(host: str) -> None:
    """A DNS name (RFC 1123 labels, '_' allowed) that is not a malformed IPv4 address."""
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise HostError(f"{host!r} is neither an IP address nor a host name")
    if all(label.isdigit() for label in labels):
        raise HostError(f"{host!r} is not a valid IPv4 address")


def _check_port(port: str) -> int:
    if port == "":
        raise HostError("the port after ':' is missing")
    if not port.isascii() or not port.isdigit():
        raise HostError(f"port {port!r} is not a number from 1 to 65535")
    number = int(port[-7:]) if len(port.lstrip("0")) <= 6 else 10**7
    if not 1 <= number <= 65535:
        raise HostError(f"port {port} is out of range (1-65535)")
    return number


def check_host(value: str | None) -> HostAddress:
    """The address `value` names, or HostError: like `parse_host`, but nothing is silently replaced by a default.
    Refused: an empty value, a scheme other than http/https, a port that is missing, not a number or outside
    1-65535, stray colons or brackets, an IPv6 zone, a host that is neither an IP address nor a DNS name, and
    whitespace or control characters anywhere."""
    text = (value or "").strip(_GO_SPACE).strip("\"'").strip(_GO_SPACE)
    if not text:
        raise HostError("the address is empty")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise HostError("it contains whitespace or control characters")
    scheme, sep, hostport = text.partition("://")
    if not sep:
        scheme, hostport = "http", text
    elif scheme not in _SCHEMES:
        raise HostError(f"scheme {scheme!r} is not http or https")
    if text == "ollama.com":
        return parse_host(text)
    hostport, _, path = hostport.partition("/")
    split = _split_host_port(hostport)
    if split is None:
        if ":" not in hostport:  # a bare name or IPv4 address: the default port
            port = None
            host = hostport
        else:  # only a bare or bracketed IPv6 address may contain colons without a port
            inner = hostport[1:-1] if hostport.startswith("[") and hostport.endswith("]") else hostport
            if _parse_ip(inner) is None or ":" not in inner:
                raise HostError(f"{hostport!r} is not host:port, an IPv6 address or [IPv6]:port")
            port, host = None, inner
    else:
        host, port_text = split
        port = _check_port(port_text)
    if "%" in host:
        raise HostError(f"{host!r}: IPv6 zones are not supported")
    if host and _parse_ip(host) is None:
        _check_name(host)
    if not hostport:
        raise HostError("there is no host or port after the scheme")
    lenient = parse_host(text)
    if port is not None and lenient.port != port:  # cannot happen for a checked port; a guard all the same
        raise HostError(f"port {port} would not be used as given")
    return lenient
