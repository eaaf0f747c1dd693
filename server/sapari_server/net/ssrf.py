"""Which addresses a user-given URL may reach: no loopback, link-local, private, multicast,
unspecified or otherwise non-global address, unless the server allows private networks.

The host is resolved once here and the connection is made to the vetted IP itself (with the
name kept for the Host header and TLS), so a DNS answer that changes between the check and
the connect (DNS rebinding) cannot smuggle the request to another address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Policy:
    """What the server may reach besides the public Internet."""

    allow_private: bool = False  # everything (a server fetching from its own network)
    # Networks allowed even though not public (e.g. one in-house media server).
    allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_settings(cls, allow_private: bool, networks: list[str]) -> Policy:
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def reason(self, ip: IPAddress) -> str | None:
        """Why ``ip`` must not be reached under this policy, or None."""
        if self.allow_private or any(ip in net for net in self.allow_networks
                                     if net.version == ip.version):
            return None
        return forbidden_reason(ip)


class UnsafeURL(ValueError):
    """The URL is not one the server may fetch; the message says why and what to do."""


@dataclass(frozen=True)
class Target:
    """A URL split into what the connection needs: scheme, host name, port, path."""

    url: str
    scheme: str
    host: str  # a name or a literal IP (without brackets)
    port: int
    path: str  # path and query, at least "/"

    @property
    def literal_ip(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse(url: str) -> Target:
    """Split and check the parts that need no network: scheme, host, port."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise UnsafeURL(f"{url!r} is not a valid URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeURL(f"only http:// and https:// URLs can be imported, not {scheme or 'a URL without scheme'}"
                        f" ({url!r})")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURL(f"{url!r} has no host name")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and error messages: refuse them.
        raise UnsafeURL("the URL carries a user name or password: put a signed or public "
                        "link instead (credentials in URLs are not accepted)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url.strip(), scheme=scheme, host=host.lower(),
                  port=port or DEFAULT_PORTS[scheme], path=path)


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why the server must not connect to ``ip``, or None when it is a public address."""
    inner = _embedded_v4(ip)
    if inner is not None:
        reason = forbidden_reason(inner)
        return None if reason is None else f"{reason} (inside the IPv6 address {ip})"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_loopback:
        return f"{ip} is a loopback address (this server itself)"
    if ip.is_link_local:
        what = " (the cloud metadata service)" if str(ip) in ("169.254.169.254", "fd00:ec2::254") \
            else ""
        return f"{ip} is a link-local address{what}"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_private:
        return f"{ip} is a private-network address"
    if not ip.is_global:
        return f"{ip} is not a public Internet address"
    return None


def _refuse(target: Target, reason: str) -> UnsafeURL:
    return UnsafeURL(f"refusing to fetch {target.url}: {reason}; the server only imports from "
                     "public Internet addresses (an administrator can allow private ones with "
                     "SAPARI_IMPORT_ALLOW_PRIVATE=true or SAPARI_IMPORT_ALLOW_NETWORKS)")


def check_static(url: str, policy: Policy) -> Target:
    """What can be checked without DNS, at request time: scheme, host, a literal IP."""
    target = parse(url)
    if policy.allow_private:
        return target
    ip = target.literal_ip
    if ip is not None:
        reason = policy.reason(ip)
        if reason:
            raise _refuse(target, reason)
    elif (target.host == "localhost" or target.host.endswith(".localhost")) and \
            policy.reason(ipaddress.IPv4Address("127.0.0.1")):
        raise _refuse(target, f"{target.host} names this server itself (loopback)")
    return target


def resolve(target: Target, policy: Policy) -> IPAddress:
    """The address to connect to: every address the name resolves to must be allowed.

    Refusing when any answer is forbidden (not only the first) means a name that mixes a
    public and a private address cannot be used to reach the private one on a retry.
    """
    check_static(target.url, policy)
    ip = target.literal_ip
    if ip is not None:
        return ip
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UnsafeURL(f"cannot resolve the host {target.host} of {target.url} ({e.strerror}): "
                        "check the URL") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise UnsafeURL(f"the host {target.host} of {target.url} has no address")
    for addr in addresses:
        reason = policy.reason(addr)
        if reason:
            raise _refuse(target, f"its host {target.host} resolves to {reason}")
    return addresses[0]
