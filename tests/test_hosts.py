"""Host resolution: exactly what Ollama's `envconfig.Host()` / `ConnectableHost()` (v0.23.2) give.

GO_TABLE was produced by running a verbatim copy of Go's `Var` + `Host` + `ConnectableHost` (from
github.com/ollama/ollama@v0.23.2/envconfig/config.go) over these inputs; it holds the Go test table
(config_test.go TestHost, TestConnectableHost), the issue's table, and edge cases found by comparing 20,000
random strings against the Go code (quotes, port spellings Go's ParseInt accepts or refuses, SplitHostPort's
errors, IPv4-mapped IPv6, zones). Columns: input, scheme, host, port as Go keeps it, path, Host().String(),
ConnectableHost().String().
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_ops.core.hosts import DEFAULT_PORT, HostAddress, parse_host

GO_TABLE = [
    ('', 'http', '127.0.0.1', '11434', '', 'http://127.0.0.1:11434', 'http://127.0.0.1:11434'),
    ('1.2.3.4', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    (':1234', 'http', '', '1234', '', 'http://:1234', 'http://:1234'),
    ('1.2.3.4:1234', 'http', '1.2.3.4', '1234', '', 'http://1.2.3.4:1234', 'http://1.2.3.4:1234'),
    ('example.com', 'http', 'example.com', '11434', '', 'http://example.com:11434', 'http://example.com:11434'),
    ('example.com:1234', 'http', 'example.com', '1234', '', 'http://example.com:1234', 'http://example.com:1234'),
    (':0', 'http', '', '0', '', 'http://:0', 'http://:0'),
    (':66000', 'http', '', '11434', '', 'http://:11434', 'http://:11434'),
    (':-1', 'http', '', '11434', '', 'http://:11434', 'http://:11434'),
    ('[::1]', 'http', '::1', '11434', '', 'http://[::1]:11434', 'http://[::1]:11434'),
    ('[::]', 'http', '::', '11434', '', 'http://[::]:11434', 'http://[::1]:11434'),
    ('::1', 'http', '::1', '11434', '', 'http://[::1]:11434', 'http://[::1]:11434'),
    ('[::1]:1337', 'http', '::1', '1337', '', 'http://[::1]:1337', 'http://[::1]:1337'),
    (' 1.2.3.4 ', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ('"1.2.3.4"', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    (' " 1.2.3.4 " ', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ("'1.2.3.4'", 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ('http://1.2.3.4', 'http', '1.2.3.4', '80', '', 'http://1.2.3.4:80', 'http://1.2.3.4:80'),
    ('http://1.2.3.4:4321', 'http', '1.2.3.4', '4321', '', 'http://1.2.3.4:4321', 'http://1.2.3.4:4321'),
    ('https://1.2.3.4', 'https', '1.2.3.4', '443', '', 'https://1.2.3.4:443', 'https://1.2.3.4:443'),
    ('https://1.2.3.4:4321', 'https', '1.2.3.4', '4321', '', 'https://1.2.3.4:4321', 'https://1.2.3.4:4321'),
    ('https://example.com/ollama', 'https', 'example.com', '443', 'ollama', 'https://example.com:443/ollama', 'https://example.com:443/ollama'),
    ('ollama.com', 'https', 'ollama.com', '443', '', 'https://ollama.com:443', 'https://ollama.com:443'),
    (':8080', 'http', '', '8080', '', 'http://:8080', 'http://:8080'),
    ('host:1', 'http', 'host', '1', '', 'http://host:1', 'http://host:1'),
    ('http://h', 'http', 'h', '80', '', 'http://h:80', 'http://h:80'),
    ('https://h:443/path', 'https', 'h', '443', 'path', 'https://h:443/path', 'https://h:443/path'),
    ('[::1]:11434', 'http', '::1', '11434', '', 'http://[::1]:11434', 'http://[::1]:11434'),
    ('0.0.0.0', 'http', '0.0.0.0', '11434', '', 'http://0.0.0.0:11434', 'http://127.0.0.1:11434'),
    ('0.0.0.0:1234', 'http', '0.0.0.0', '1234', '', 'http://0.0.0.0:1234', 'http://127.0.0.1:1234'),
    ('[::]:1234', 'http', '::', '1234', '', 'http://[::]:1234', 'http://[::1]:1234'),
    ('192.168.1.5', 'http', '192.168.1.5', '11434', '', 'http://192.168.1.5:11434', 'http://192.168.1.5:11434'),
    ('192.168.1.5:8080', 'http', '192.168.1.5', '8080', '', 'http://192.168.1.5:8080', 'http://192.168.1.5:8080'),
    ('https://0.0.0.0:4321', 'https', '0.0.0.0', '4321', '', 'https://0.0.0.0:4321', 'https://127.0.0.1:4321'),
    ('127.0.0.1', 'http', '127.0.0.1', '11434', '', 'http://127.0.0.1:11434', 'http://127.0.0.1:11434'),
    ('127.0.0.1:1234', 'http', '127.0.0.1', '1234', '', 'http://127.0.0.1:1234', 'http://127.0.0.1:1234'),
    ('localhost', 'http', 'localhost', '11434', '', 'http://localhost:11434', 'http://localhost:11434'),
    ('localhost:11434', 'http', 'localhost', '11434', '', 'http://localhost:11434', 'http://localhost:11434'),
    ('host:abc', 'http', 'host', '11434', '', 'http://host:11434', 'http://host:11434'),
    ('host:', 'http', 'host', '11434', '', 'http://host:11434', 'http://host:11434'),
    ('host:99999', 'http', 'host', '11434', '', 'http://host:11434', 'http://host:11434'),
    ('host:65535', 'http', 'host', '65535', '', 'http://host:65535', 'http://host:65535'),
    ('host:65536', 'http', 'host', '11434', '', 'http://host:11434', 'http://host:11434'),
    (':+80', 'http', '', '+80', '', 'http://:+80', 'http://:+80'),
    (':8_0', 'http', '', '11434', '', 'http://:11434', 'http://:11434'),
    (': 80', 'http', '', '11434', '', 'http://:11434', 'http://:11434'),
    (':080', 'http', '', '080', '', 'http://:080', 'http://:080'),
    ('h:1:2', 'http', 'h:1:2', '11434', '', 'http://[h:1:2]:11434', 'http://[h:1:2]:11434'),
    ('[::1]:80:90', 'http', '[::1]:80:90', '11434', '', 'http://[[::1]:80:90]:11434', 'http://[[::1]:80:90]:11434'),
    ('a]:1', 'http', 'a]:1', '11434', '', 'http://[a]:1]:11434', 'http://[a]:1]:11434'),
    ('[::1', 'http', '::1', '11434', '', 'http://[::1]:11434', 'http://[::1]:11434'),
    ('::ffff:1.2.3.4', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ('ftp://h', 'ftp', 'h', '11434', '', 'ftp://h:11434', 'ftp://h:11434'),
    ('HTTP://h', 'HTTP', 'h', '11434', '', 'HTTP://h:11434', 'HTTP://h:11434'),
    ('http://', 'http', '127.0.0.1', '80', '', 'http://127.0.0.1:80', 'http://127.0.0.1:80'),
    ('https://', 'https', '127.0.0.1', '443', '', 'https://127.0.0.1:443', 'https://127.0.0.1:443'),
    ('://h', '', 'h', '11434', '', '//h:11434', '//h:11434'),
    ('http://[::1]', 'http', '::1', '80', '', 'http://[::1]:80', 'http://[::1]:80'),
    ('http://[::1]:8080/a/b', 'http', '::1', '8080', 'a/b', 'http://[::1]:8080/a/b', 'http://[::1]:8080/a/b'),
    ('http:/h', 'http', 'http', '11434', 'h', 'http://http:11434/h', 'http://http:11434/h'),
    ('ollama.com:443', 'http', 'ollama.com', '443', '', 'http://ollama.com:443', 'http://ollama.com:443'),
    ('https://ollama.com', 'https', 'ollama.com', '443', '', 'https://ollama.com:443', 'https://ollama.com:443'),
    (' ollama.com ', 'https', 'ollama.com', '443', '', 'https://ollama.com:443', 'https://ollama.com:443'),
    ("'ollama.com'", 'https', 'ollama.com', '443', '', 'https://ollama.com:443', 'https://ollama.com:443'),
    ('http://h/', 'http', 'h', '80', '', 'http://h:80', 'http://h:80'),
    ('h/p', 'http', 'h', '11434', 'p', 'http://h:11434/p', 'http://h:11434/p'),
    ('[fe80::1%eth0]:80', 'http', 'fe80::1%eth0', '80', '', 'http://[fe80::1%25eth0]:80', 'http://[fe80::1%25eth0]:80'),
    ('fe80::1%eth0', 'http', 'fe80::1%eth0', '11434', '', 'http://[fe80::1%25eth0]:11434', 'http://[fe80::1%25eth0]:11434'),
    ('::', 'http', '::', '11434', '', 'http://[::]:11434', 'http://[::1]:11434'),
    ('1.2.3.4:0', 'http', '1.2.3.4', '0', '', 'http://1.2.3.4:0', 'http://1.2.3.4:0'),
    (':', 'http', '', '11434', '', 'http://:11434', 'http://:11434'),
    ('[]:80', 'http', '', '80', '', 'http://:80', 'http://:80'),
    ('[]', 'http', '[]', '11434', '', 'http://[]:11434', 'http://[]:11434'),
    ('01.2.3.4', 'http', '01.2.3.4', '11434', '', 'http://01.2.3.4:11434', 'http://01.2.3.4:11434'),
    ('::0001', 'http', '::1', '11434', '', 'http://[::1]:11434', 'http://[::1]:11434'),
    ('0:0:0:0:0:0:0:1', 'http', '::1', '11434', '', 'http://[::1]:11434', 'http://[::1]:11434'),
    ('h:-0', 'http', 'h', '-0', '', 'http://h:-0', 'http://h:-0'),
    ('h:+1', 'http', 'h', '+1', '', 'http://h:+1', 'http://h:+1'),
    ('\t1.2.3.4\n', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ('""', 'http', '127.0.0.1', '11434', '', 'http://127.0.0.1:11434', 'http://127.0.0.1:11434'),
    ("'", 'http', '127.0.0.1', '11434', '', 'http://127.0.0.1:11434', 'http://127.0.0.1:11434'),
    ('1.2.3.4:11434/', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ('x://h:5', 'x', 'h', '5', '', 'x://h:5', 'x://h:5'),
    ('https://h:80', 'https', 'h', '80', '', 'https://h:80', 'https://h:80'),
    ('[1.2.3.4]', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ('[1.2.3.4]:5', 'http', '1.2.3.4', '5', '', 'http://1.2.3.4:5', 'http://1.2.3.4:5'),
    ('[h]:5', 'http', 'h', '5', '', 'http://h:5', 'http://h:5'),
    ('[h]', 'http', '[h]', '11434', '', 'http://[h]:11434', 'http://[h]:11434'),
    ('1.2.3.4]', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    ('\x1c1.2.3.4', 'http', '\x1c1.2.3.4', '11434', '', 'http://%1C1.2.3.4:11434', 'http://%1C1.2.3.4:11434'),
    ('\xa01.2.3.4\xa0', 'http', '1.2.3.4', '11434', '', 'http://1.2.3.4:11434', 'http://1.2.3.4:11434'),
    (':000000000080', 'http', '', '000000000080', '', 'http://:000000000080', 'http://:000000000080'),
    (':99999999999999999999', 'http', '', '11434', '', 'http://:11434', 'http://:11434'),
    ('[::1]:+080', 'http', '::1', '+080', '', 'http://[::1]:+080', 'http://[::1]:+080'),
    ('[::ffff:1.2.3.4]:5', 'http', '::ffff:1.2.3.4', '5', '', 'http://[::ffff:1.2.3.4]:5', 'http://[::ffff:1.2.3.4]:5'),
    ('0.0.0.0:11434', 'http', '0.0.0.0', '11434', '', 'http://0.0.0.0:11434', 'http://127.0.0.1:11434'),
    ('[::]:11434', 'http', '::', '11434', '', 'http://[::]:11434', 'http://[::1]:11434'),
    ('http://0.0.0.0:8080', 'http', '0.0.0.0', '8080', '', 'http://0.0.0.0:8080', 'http://127.0.0.1:8080'),
    ('https://[::]:4321/x', 'https', '::', '4321', 'x', 'https://[::]:4321/x', 'https://[::1]:4321/x'),
]


def _canonical(port: str, url: str) -> bool:
    """Go keeps the port as written ('+080'), and escapes odd bytes in URLs; we keep an int port."""
    return port == str(int(port)) and "%" not in url and not url.startswith("//")


@pytest.mark.parametrize("value, scheme, host, port, path, url, connectable", GO_TABLE)
def test_parse_host_matches_go(value, scheme, host, port, path, url, connectable):
    addr = parse_host(value)
    assert (addr.scheme, addr.host, addr.port, addr.path) == (scheme, host, int(port), path)
    if _canonical(port, url):
        assert addr.bind == url


@pytest.mark.parametrize("value, scheme, host, port, path, url, connectable",
                         [row for row in GO_TABLE if row[2] and _canonical(row[3], row[6])])
def test_base_url_matches_go_connectable_host(value, scheme, host, port, path, url, connectable):
    assert parse_host(value).base_url == connectable


@pytest.mark.parametrize("value", [":1234", ":", "[]:80"])
def test_empty_host_is_reached_over_loopback(value):
    # Go leaves "http://:1234" to its dialer, which connects to this machine; httpx needs the address.
    addr = parse_host(value)
    assert addr.host == ""
    assert addr.base_url.startswith("http://127.0.0.1:")
    assert addr.is_local and not addr.is_loopback


@pytest.mark.parametrize("value, loopback, local", [
    ("", True, True), ("127.0.0.1:1", True, True), ("localhost", True, True), ("[::1]:5", True, True),
    ("0.0.0.0", False, True), ("[::]", False, True), ("[0:0::0]:80", False, True), ("::ffff:0.0.0.0", False, True),
    ("192.168.1.5", False, False), ("example.com", False, False), ("https://ollama.com", False, False),
])
def test_loopback_and_local(value, loopback, local):
    addr = parse_host(value)
    assert (addr.is_loopback, addr.is_local) == (loopback, local)


@pytest.mark.parametrize("value, connect", [
    ("0.0.0.0:9", "http://127.0.0.1:9"), ("[::]:9", "http://[::1]:9"), ("[0:0::0]:9", "http://[::1]:9"),
    ("[::ffff:0.0.0.0]:9", "http://127.0.0.1:9"),
])
def test_unspecified_spellings_connect_over_loopback(value, connect):
    assert parse_host(value).base_url == connect


# -- properties ------------------------------------------------------------------------------------------------

hostnames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)
ips = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
hosts = st.one_of(hostnames, ips, st.just(""))
ports = st.integers(0, 65535)
paths = st.from_regex(r"([a-z0-9_-]{1,8}(/[a-z0-9_-]{1,8}){0,2})?", fullmatch=True)


@given(st.text(max_size=60))
def test_any_text_resolves_without_raising(value):
    addr = parse_host(value)
    assert 0 <= addr.port <= 65535
    assert isinstance(addr.base_url, str)


@given(st.sampled_from(["http", "https"]), hosts, ports, paths)
def test_bind_round_trips(scheme, host, port, path):
    addr = HostAddress(scheme=scheme, host=parse_host(f"[{host}]" if ":" in host else host).host if host else "",
                       port=port, path=path)
    assert parse_host(addr.bind) == addr


@given(hosts, ports, st.sampled_from(['"', "'", " ", "\t", ' "', "' "]))
def test_quotes_and_spaces_around_the_value_are_ignored(host, port, wrap):
    value = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert parse_host(f"{wrap}{value}{wrap[::-1]}") == parse_host(value)


@given(hosts)
def test_no_port_means_the_default(host):
    value = f"[{host}]" if ":" in host else host
    addr = parse_host(value)
    expected = 443 if value == "ollama.com" else DEFAULT_PORT
    assert addr.port == expected


@given(st.integers(65536, 10**30) | st.integers(-(10**30), -1))
def test_out_of_range_ports_fall_back_to_the_scheme_default(port):
    assert parse_host(f"h:{port}").port == DEFAULT_PORT
    assert parse_host(f"http://h:{port}").port == 80
    assert parse_host(f"https://h:{port}").port == 443
