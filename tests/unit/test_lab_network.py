"""The lab's names and addresses: derived from its state directory."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab import network
from lab.errors import LabError


def test_lab_id_is_stable_and_differs_between_state_dirs(tmp_path: Path) -> None:
    """The same state directory always gives the same id, another one another."""
    assert network.lab_id(tmp_path / "a") == network.lab_id(tmp_path / "a")
    assert network.lab_id(tmp_path / "a") != network.lab_id(tmp_path / "b")
    assert len(network.lab_id(tmp_path)) == 6


@pytest.mark.parametrize("lab", ["000000", "8ff83f", "ffffff", "0a0b0c"])
def test_default_subnet_is_a_private_24_in_the_lab_range(lab: str) -> None:
    """Every lab id maps to a /24 between 10.100.0.0 and 10.199.255.0."""
    subnet = network.default_subnet(lab)
    assert subnet.prefixlen == 24
    assert subnet.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    assert 100 <= subnet.network_address.packed[1] <= 199


def test_neighbouring_ids_get_different_subnets() -> None:
    """Ids one apart do not share a subnet."""
    assert network.default_subnet("000001") != network.default_subnet("000002")


def test_machine_addresses_start_at_ten_and_stop_before_broadcast() -> None:
    """Machine 0 is .10, the bridge .1, and a subnet with no room refuses."""
    subnet = ipaddress.IPv4Network("10.150.7.0/24")
    assert str(network.gateway(subnet)) == "10.150.7.1"
    assert str(network.machine_address(subnet, 0)) == "10.150.7.10"
    assert str(network.machine_address(subnet, 244)) == "10.150.7.254"
    with pytest.raises(LabError, match="no room"):
        network.machine_address(subnet, 245)


def test_interface_names_fit_the_kernel_limit() -> None:
    """Bridge and veth names stay within 15 characters up to machine 999."""
    assert len(network.bridge_name("abcdef")) <= 15
    assert len(network.host_interface("abcdef", 999)) <= 15
    assert network.host_interface("abcdef", 3).startswith(network.bridge_name("abcdef"))


def test_nat_tag_names_the_lab() -> None:
    """The comment on a lab's iptables rules carries its id."""
    assert network.nat_tag("abcdef").endswith("lab abcdef")
