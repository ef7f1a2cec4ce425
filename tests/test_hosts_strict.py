"""The strict address check (`core.hosts.check_host`) and its use at every entry (--host, OLLAMA_HOST, SOLLAMA_*,
config): a typo is a usage error naming the value, never a quiet fall-back to the shared daemon's address."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ollama_ops.core.hosts import HostError, check_host, parse_host

labels = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
names = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda ip: ip.ipv4_mapped is None).map(str)
good_ports = st.integers(min_value=1, max_value=65535)


@given(host=st.one_of(names, ipv4), port=good_ports, scheme=st.sampled_from(["", "http://", "https://"]))
def test_every_valid_host_and_port_is_taken_as_given(host, port, scheme):
    addr = check_host(f"{scheme}{host}:{port}")
    assert (addr.host, addr.port) == (host, port)
    assert addr.scheme == (scheme[:-3] or "http")
    assert check_host(addr.bind) == addr  # what start hands to `ollama serve` reads back the same


@given(ip=ipv6, port=good_ports)
def test_bracketed_ipv6_with_port_and_bare_ipv6(ip, port):
    assert (check_host(f"[{ip}]:{port}").host, check_host(f"[{ip}]:{port}").port) == (ip, port)
    bare = check_host(ip)
    assert ipaddress.ip_address(bare.host) == ipaddress.ip_address(ip) and bare.port == 11434


@given(host=st.one_of(names, ipv4, st.just("")),
       port=st.one_of(st.integers(min_value=65536, max_value=10**12), st.integers(max_value=0)))
def test_every_port_out_of_range_is_refused_naming_it(host, port):
    with pytest.raises(HostError) as info:
        check_host(f"{host}:{port}")
    assert str(port).lstrip("-") in str(info.value)


@given(host=st.one_of(names, ipv4), junk=st.text(alphabet="abcxyz+_. ", min_size=1, max_size=6))
def test_a_port_that_is_not_a_number_is_refused(host, junk):
    assume(not junk.strip().isdigit())
    with pytest.raises(HostError):
        check_host(f"{host}:{junk}")


@given(st.text(max_size=40))
def test_any_text_is_an_address_or_a_host_error_and_agrees_with_ollama(text):
    """Never another exception; and what is accepted is exactly what Ollama itself makes of the value (so sollama
    and the daemon never disagree about an address)."""
    try:
        addr = check_host(text)
    except HostError as exc:
        assert str(exc)
        return
    assert addr == parse_host(text)
    assert 1 <= addr.port <= 65535


@given(st.integers(min_value=2, max_value=12))
def test_colons_alone_are_refused(n):
    with pytest.raises(HostError):
        check_host(":" * n if n != 2 else ":::")


@pytest.mark.parametrize("value", ["127.0.0.1:99999", "127.0.0.1:-1", ":::::", "localhost:65536", "host:", "h:1:2",
                                   "[::1", "a]:1", "999.1.1.1", "127.0.0.1.1", "ftp://h:1", "http://", "a b:1",
                                   "fe80::1%eth0", "[::1]:0", ":+80", "host:8O80", "\x1b[31m:1"])
def test_typos_are_refused(value):
    with pytest.raises(HostError):
        check_host(value)


@pytest.mark.parametrize(("value", "url"), [
    ("127.0.0.1:11500", "http://127.0.0.1:11500"), (":8080", "http://127.0.0.1:8080"), ("::1", "http://[::1]:11434"),
    ("localhost", "http://localhost:11434"), ("https://example.com/ollama", "https://example.com:443/ollama"),
    ("0.0.0.0:1234", "http://127.0.0.1:1234"), (' "10.0.0.5" ', "http://10.0.0.5:11434"),
    ("ollama.com", "https://ollama.com:443"),
])
def test_valid_addresses(value, url):
    assert check_host(value).base_url == url


# -- every entry point ---------------------------------------------------------------------------------------------

BAD = ["127.0.0.1:99999", "127.0.0.1:-5", ":::::", "localhost:0", "10.0.0.5:11434x"]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("command", [["status"], ["models", "list"], ["models", "rm", "x"], ["stop"],
                                     ["models", "unload", "--all"]])
def test_bad_host_flag_is_exit_2_naming_the_value(sollama, value, command):
    result = sollama(f"--host={value}", *command)
    assert result.exit_code == 2, result.output
    assert value in result.stderr and "--host" in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("var", ["OLLAMA_HOST", "SOLLAMA_SERVER_HOST"])
@pytest.mark.parametrize("value", BAD)
def test_bad_host_in_the_environment_is_exit_2_naming_variable_and_value(sollama, var, value):
    result = sollama("status", env={var: value})
    assert result.exit_code == 2, result.output
    assert var in result.stderr and value in result.stderr


def test_a_valid_flag_wins_over_a_bad_environment_value(sollama, stub):
    result = sollama("--host", stub.host, "status", "--json", env={"OLLAMA_HOST": "127.0.0.1:99999"})
    assert result.exit_code == 0, result.output


def test_bad_host_in_the_config_file_names_file_and_value(sollama, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("server:\n  host: '127.0.0.1:99999'\n")
    result = sollama("--config", str(config), "status")
    assert result.exit_code == 3, result.output
    assert str(config) in result.stderr and "127.0.0.1:99999" in result.stderr and "out of range" in result.stderr


@pytest.mark.parametrize("var", ["OLLAMA_HOST", "SOLLAMA_SERVER_HOST"])
@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_host_variable_is_unset(sollama, var, empty):
    result = sollama("config", "show", "--json", env={var: empty})
    assert result.exit_code == 0, result.output
    import json

    host = next(e for e in json.loads(result.stdout)["entries"] if e["key"] == "server.host")
    assert (host["value"], host["source"]) == ("127.0.0.1:11434", "default")


# -- the gateway's upstream: the same class of typo ----------------------------------------------------------------

@pytest.mark.parametrize("value", ["127.0.0.1:99999", ":::::", "127.0.0.1:-1"])
def test_a_mistyped_gateway_upstream_is_refused_not_defaulted(sollama, tmp_path, value):
    flag = sollama("serve", "--upstream", value, "--insecure-no-auth", "--listen", "127.0.0.1:1")
    assert flag.exit_code == 2, flag.output
    assert value in flag.stderr and "--upstream" in flag.stderr
    env = sollama("config", "show", env={"SOLLAMA_GATEWAY_UPSTREAM": value})
    assert env.exit_code == 2 and "SOLLAMA_GATEWAY_UPSTREAM" in env.stderr and value in env.stderr
    config = tmp_path / "c.yaml"
    config.write_text(f"gateway:\n  upstream: '{value}'\n  upstreams: ['{value} slots=2']\n")
    result = sollama("config", "validate", str(config))
    assert result.exit_code == 3, result.output
    assert "gateway.upstream" in result.stderr and value in result.stderr
    from ollama_ops.errors import ConfigError
    from ollama_ops.gateway.settings import parse_upstreams

    with pytest.raises(ConfigError, match="invalid address"):
        parse_upstreams([f"{value} slots=2"], 1)
