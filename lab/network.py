"""The lab's network: a bridge with a private /24 of its own, NAT to the
outside, and one network namespace per machine joined to the bridge by a
veth pair whose host side the lab names (so it can cut it)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import shlex
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.shell import run

__all__ = [
    "PREFIX",
    "bridge_name",
    "connect_machine",
    "cut_link",
    "default_subnet",
    "delete_link",
    "delete_namespace",
    "disable_nat",
    "enable_forwarding",
    "enable_nat",
    "ensure_bridge",
    "gateway",
    "host_interface",
    "lab_id",
    "lab_interfaces",
    "lab_namespaces",
    "link_is_up",
    "machine_address",
    "nat_tag",
    "netns_name",
    "restore_forwarding",
    "restore_link",
    "subnet_users",
]

log = logging.getLogger(__name__)

PREFIX = "rolab"
FIRST_MACHINE_HOST = 10
_FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")


def lab_id(state_dir: Path) -> str:
    """Return six hex digits derived from the lab's state directory, so that
    two labs (two checkouts, or two names) get different names and subnets."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:6]


def bridge_name(lab: str) -> str:
    """Return the bridge of lab ``lab`` (11 characters, within IFNAMSIZ)."""
    return f"{PREFIX}{lab}"


def host_interface(lab: str, index: int) -> str:
    """Return the host side of machine ``index``'s veth pair."""
    return f"{PREFIX}{lab}-{index}"


def netns_name(lab: str, machine: str) -> str:
    """Return the network namespace of ``machine`` in lab ``lab``."""
    return f"{PREFIX}{lab}-{machine}"


def nat_tag(lab: str) -> str:
    """Return the comment that marks lab ``lab``'s iptables rules."""
    return f"research-orchestration lab {lab}"


def default_subnet(lab: str) -> ipaddress.IPv4Network:
    """Return the /24 lab ``lab`` uses unless told otherwise: one of 25,600
    in 10.100.0.0 to 10.199.255.0, chosen by the lab's id."""
    number = int(lab, 16)
    return ipaddress.IPv4Network(f"10.{100 + number % 100}.{number // 100 % 256}.0/24")


def gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """Return the bridge's address: the first host of ``subnet``."""
    return subnet.network_address + 1


def machine_address(subnet: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    """Return the address of machine ``index``; raise LabError when the
    subnet has no room for it."""
    address = subnet.network_address + FIRST_MACHINE_HOST + index
    if address >= subnet.broadcast_address:
        raise LabError(f"subnet {subnet} has no room for machine number {index}")
    return address


def _json(argv: list[str]) -> list[dict[str, Any]]:
    output = run(argv).stdout
    data = json.loads(output) if output.strip() else []
    return data if isinstance(data, list) else []


def subnet_users(subnet: ipaddress.IPv4Network, own_bridge: str) -> list[str]:
    """Return a line for each host address or route that overlaps ``subnet``,
    other than those on ``own_bridge``; empty when the subnet is free."""
    users = []
    for link in _json(["ip", "-j", "-4", "addr", "show"]):
        name = str(link.get("ifname", ""))
        for info in link.get("addr_info") or []:
            network = ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
            if name != own_bridge and network.overlaps(subnet):
                users.append(f"address {info['local']}/{info['prefixlen']} on {name}")
    for route in _json(["ip", "-j", "-4", "route", "show"]):
        destination = str(route.get("dst", ""))
        if destination in ("", "default") or route.get("dev") == own_bridge:
            continue
        if ipaddress.IPv4Network(destination, strict=False).overlaps(subnet):
            users.append(f"route {destination} via {route.get('dev')}")
    return users


def ensure_bridge(name: str, subnet: ipaddress.IPv4Network) -> None:
    """Create bridge ``name`` with the subnet's gateway address, or leave it
    as it is if it exists. Raises LabError if ``ip`` fails."""
    if run(["ip", "link", "show", "dev", name], check=False).returncode != 0:
        run(["ip", "link", "add", name, "type", "bridge"])
        run(["ip", "addr", "add", f"{gateway(subnet)}/{subnet.prefixlen}", "dev", name])
        log.info("bridge %s: created for %s", name, subnet)
    run(["ip", "link", "set", name, "up"])


def delete_link(name: str) -> None:
    """Delete network interface ``name`` (a bridge, a veth) if it exists."""
    if run(["ip", "link", "delete", name], check=False).returncode == 0:
        log.info("link %s: deleted", name)
    elif run(["ip", "link", "show", "dev", name], check=False).returncode == 0:
        raise LabError(f"link {name}: cannot be deleted")


def enable_nat(bridge: str, subnet: ipaddress.IPv4Network, tag: str) -> None:
    """Masquerade the subnet's traffic leaving by any other interface and
    accept forwarding to and from the bridge, each rule marked with ``tag``.
    Existing rules with that tag are replaced, not doubled."""
    disable_nat(tag)
    comment = ["-m", "comment", "--comment", tag]
    rules = [
        ["nat", "-A", "POSTROUTING", "-s", str(subnet), "!", "-o", bridge, *comment],
        ["filter", "-I", "FORWARD", "-i", bridge, *comment],
        ["filter", "-I", "FORWARD", "-o", bridge, *comment],
    ]
    for table, *rule in rules:
        target = "MASQUERADE" if table == "nat" else "ACCEPT"
        run(["iptables", "-w", "-t", table, *rule, "-j", target])
    log.info("nat %s: masquerading %s", bridge, subnet)


def disable_nat(tag: str) -> None:
    """Delete every iptables rule (nat POSTROUTING, filter FORWARD) that
    carries ``tag``; there may be none."""
    for table, chain in (("nat", "POSTROUTING"), ("filter", "FORWARD")):
        listing = run(["iptables", "-w", "-t", table, "-S", chain]).stdout
        for line in listing.splitlines():
            words = shlex.split(line)
            if words[:1] == ["-A"] and tag in words:
                run(["iptables", "-w", "-t", table, "-D", *words[1:]])
                log.info("nat: removed %s rule %s", table, line)


def enable_forwarding() -> bool:
    """Turn on IPv4 forwarding; return True if it was off (so that the lab
    that turned it on can turn it off again)."""
    if _FORWARDING.read_text(encoding="utf-8").strip() == "1":
        return False
    _FORWARDING.write_text("1\n", encoding="utf-8")
    log.info("host: IPv4 forwarding turned on")
    return True


def restore_forwarding() -> None:
    """Turn IPv4 forwarding off again unless another lab's bridge is up."""
    if lab_interfaces(""):
        log.info("host: IPv4 forwarding left on, another lab is up")
        return
    _FORWARDING.write_text("0\n", encoding="utf-8")
    log.info("host: IPv4 forwarding turned off")


def connect_machine(
    netns: str,
    host_if: str,
    bridge: str,
    address: ipaddress.IPv4Address,
    subnet: ipaddress.IPv4Network,
) -> None:
    """Create namespace ``netns`` with ``host0`` at ``address``, joined to
    ``bridge`` by ``host_if``, with a default route via the bridge. Does
    nothing if the namespace exists (a restarted machine keeps its own)."""
    if netns in lab_namespaces(netns):
        return
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "host0", "netns", netns])
    run(["ip", "link", "set", host_if, "master", bridge, "up"])
    inside = ["ip", "-n", netns]
    run([*inside, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "host0"])
    run([*inside, "link", "set", "lo", "up"])
    run([*inside, "link", "set", "host0", "up"])
    run([*inside, "route", "add", "default", "via", str(gateway(subnet))])
    log.info("netns %s: %s on %s via %s", netns, address, bridge, host_if)


def delete_namespace(netns: str) -> None:
    """Delete network namespace ``netns``, and with it the machine's veth
    pair; it may be gone already."""
    if netns in lab_namespaces(netns):
        run(["ip", "netns", "delete", netns])
        log.info("netns %s: deleted", netns)


def cut_link(host_if: str) -> None:
    """Take the host side of a machine's veth down: the machine keeps
    running but nothing reaches it and it reaches nothing."""
    run(["ip", "link", "set", host_if, "down"])


def restore_link(host_if: str) -> None:
    """Bring the host side of a machine's veth back up."""
    run(["ip", "link", "set", host_if, "up"])


def link_is_up(host_if: str) -> bool:
    """Return whether interface ``host_if`` exists and is administratively up."""
    links = _json(["ip", "-j", "link", "show"])
    return any(link.get("ifname") == host_if and "UP" in link.get("flags", []) for link in links)


def lab_interfaces(lab: str) -> list[str]:
    """Return the host's interfaces whose name starts with lab ``lab``'s
    prefix (every lab's, for an empty ``lab``)."""
    names = (str(link.get("ifname", "")) for link in _json(["ip", "-j", "link", "show"]))
    return [name.split("@")[0] for name in names if name.startswith(bridge_name(lab))]


def lab_namespaces(prefix: str) -> list[str]:
    """Return the named network namespaces that start with ``prefix``."""
    lines = run(["ip", "netns", "list"]).stdout.splitlines()
    names = (line.split()[0] for line in lines if line.strip())
    return [name for name in names if name.startswith(prefix)]
