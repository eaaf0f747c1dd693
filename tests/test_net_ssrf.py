"""The SSRF guard's address rules, IPv4 and IPv6, including addresses hidden inside IPv6."""

from __future__ import annotations

import ipaddress

import pytest

from sapari_server.net import ssrf

FORBIDDEN = {
    "127.0.0.1": "loopback", "127.255.0.9": "loopback", "::1": "loopback",
    "169.254.169.254": "metadata", "169.254.1.1": "link-local", "fe80::1": "link-local",
    "10.0.0.1": "private", "172.16.5.5": "private", "192.168.1.1": "private",
    "fc00::1": "private", "fd12:3456::1": "private",
    "224.0.0.1": "multicast", "239.1.2.3": "multicast", "ff02::1": "multicast",
    "0.0.0.0": "unspecified", "::": "unspecified",
    "100.64.0.1": "not a public", "192.0.2.1": "private",
    "::ffff:127.0.0.1": "loopback", "::ffff:169.254.169.254": "metadata",
    "64:ff9b::a9fe:a9fe": "metadata",  # NAT64 of 169.254.169.254
    "2002:a00:1::1": "private",  # 6to4 of 10.0.0.1
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2001:4860:4860::8888", "2606:4700::1111"]


@pytest.mark.parametrize(("addr", "word"), FORBIDDEN.items())
def test_forbidden_addresses(addr: str, word: str) -> None:
    reason = ssrf.forbidden_reason(ipaddress.ip_address(addr))
    assert reason is not None and word in reason, (addr, reason)


@pytest.mark.parametrize("addr", PUBLIC)
def test_public_addresses_pass(addr: str) -> None:
    assert ssrf.forbidden_reason(ipaddress.ip_address(addr)) is None


def test_policy_allows_only_what_it_names() -> None:
    policy = ssrf.Policy.from_settings(False, ["10.0.5.7/32", "fd00::/8"])
    assert policy.reason(ipaddress.ip_address("10.0.5.7")) is None
    assert policy.reason(ipaddress.ip_address("fd00::5")) is None
    assert policy.reason(ipaddress.ip_address("10.0.5.8")) is not None
    assert policy.reason(ipaddress.ip_address("127.0.0.1")) is not None
    assert ssrf.Policy(allow_private=True).reason(ipaddress.ip_address("127.0.0.1")) is None


@pytest.mark.parametrize(("url", "word"), [
    ("ftp://example.org/a.mp4", "only http:// and https://"),
    ("javascript:alert(1)", "only http:// and https://"),
    ("http:///nohost", "no host"),
    ("http://u:p@example.org/a.mp4", "password"),
    ("http://example.org:99999/a.mp4", "not a valid URL"),
    ("http://localhost/a.mp4", "loopback"),
    ("http://foo.localhost/a.mp4", "loopback"),
    ("http://[::1]:8000/a.mp4", "loopback"),
])
def test_static_checks(url: str, word: str) -> None:
    with pytest.raises(ssrf.UnsafeURL, match=word):
        ssrf.check_static(url, ssrf.Policy())


def test_numeric_host_forms_are_caught_when_resolved() -> None:
    # "2130706433" and "0x7f.1" are 127.0.0.1 to the C resolver: the resolved address is
    # what is checked, so no spelling of loopback gets through.
    for host in ("2130706433", "0x7f.0.0.1", "127.1"):
        target = ssrf.parse(f"http://{host}/a.mp4")
        with pytest.raises(ssrf.UnsafeURL, match="loopback"):
            ssrf.resolve(target, ssrf.Policy())
