"""A lab as a whole: bring it up, add machines, inject faults, take it down.

Every operation takes the lab's lock, reads the state file, acts, and
writes the state back, so separate commands (the CLI, a Make target, a
test) can work on one lab in turn.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab import access, cgroups, machine, network
from lab.basetree import ensure_base_tree
from lab.errors import LabError
from lab.layout import LabLayout, default_cache_dir, default_state_dir
from lab.locking import hold_lock
from lab.preflight import check_requirements
from lab.profiles import write_inventory
from lab.shape import MachineSpec, default_shape
from lab.state import LabState, MachineRecord, load_state, save_state

__all__ = ["Lab", "MachineStatus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MachineStatus:
    """What ``Lab.status`` reports about one machine."""

    name: str
    address: str
    roles: tuple[str, ...]
    tier: str
    running: bool
    cut: bool


class Lab:
    """A set of systemd-nspawn machines on a private bridge, described by
    the state directory (``.lab`` by default) that holds its state file,
    inventory and SSH key."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        name: str = "lab",
        cache_dir: Path | None = None,
        subnet: str | None = None,
        boot_timeout: float = 60.0,
    ) -> None:
        state_dir = (state_dir or default_state_dir()).resolve()
        self.layout = LabLayout(state_dir, cache_dir or default_cache_dir())
        self.name = name
        self.lab_id = network.lab_id(state_dir)
        self.bridge = network.bridge_name(self.lab_id)
        self.boot_timeout = boot_timeout
        self._subnet = subnet

    # --- what the lab is -------------------------------------------------

    def state(self) -> LabState | None:
        """Return the lab's saved state, or None if the lab is not up."""
        return load_state(self.layout.state_file)

    def machine(self, name: str) -> MachineRecord:
        """Return machine ``name``'s record; raise LabError if the lab is
        not up or has no such machine."""
        return self._find(self._loaded(), name)

    def _find(self, state: LabState, name: str) -> MachineRecord:
        if name not in state.machines:
            known = ", ".join(state.machines) or "none"
            raise LabError(f"lab {self.layout.state_dir}: no machine {name!r}; it has {known}")
        return state.machines[name]

    def address(self, name: str) -> str:
        """Return machine ``name``'s address on the lab's bridge."""
        return self.machine(name).address

    def status(self) -> list[MachineStatus]:
        """Return the status of every machine, empty when the lab is not up."""
        state = self.state()
        machines = state.machines.values() if state else []
        return [
            MachineStatus(
                m.name,
                m.address,
                tuple(m.roles),
                m.tier,
                machine.is_running(self.lab_id, m.name),
                m.cut,
            )
            for m in machines
        ]

    def ssh_argv(self, name: str, command: Sequence[str] = ()) -> list[str]:
        """Return the ssh command line that runs ``command`` on ``name``."""
        return access.ssh_argv(self.layout, self.address(name), command)

    def exec_argv(self, name: str, command: Sequence[str]) -> list[str]:
        """Return the nsenter command line that runs ``command`` inside
        ``name`` (no SSH, no network needed). Raises LabError if the machine
        is not running."""
        record = self.machine(name)
        if not machine.is_running(self.lab_id, name):
            raise LabError(f"machine {name}: not running; start it with 'lab restart {name}'")
        return machine.exec_argv(machine.init_pid(record.pid), command)

    def run(
        self, name: str, command: Sequence[str], *, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside machine ``name`` through nsenter and return
        the result, output captured. Raises LabError on failure with check."""
        argv = self.exec_argv(name, command)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise LabError(
                f"machine {name}: {' '.join(command)}: exit {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result

    # --- bringing it up ----------------------------------------------------

    def up(self, specs: Sequence[MachineSpec] | None = None) -> LabState:
        """Boot the lab's machines (the default shape unless ``specs``) and
        return its state once every one answers SSH; machines already
        running are left as they are.

        Raises LabError if the host lacks something, the subnet is taken, or
        a machine does not boot; then nothing of the lab is left running.
        """
        check_requirements()
        with self._locked():
            state = self._load_or_create()
            try:
                self._start_network(state)
                records = [self._record(state, spec) for spec in specs or default_shape(self.name)]
                stopped = [r for r in records if not machine.is_running(self.lab_id, r.name)]
                self._boot(state, stopped)
            except BaseException:
                log.warning("lab %s: up failed, taking it down", self.layout.state_dir)
                self._teardown(state)
                raise
        return state

    def add(self, spec: MachineSpec) -> MachineRecord:
        """Boot one more machine in a lab that is up and return its record;
        the other machines' /etc/hosts, the known_hosts and the inventory
        learn it. Raises LabError if the lab is not up or the name is taken;
        a machine that does not boot is removed again."""
        check_requirements()
        with self._locked():
            state = self._loaded()
            if spec.name in state.machines:
                raise LabError(f"machine {spec.name}: already in the lab")
            record = self._record(state, spec)
            try:
                self._boot(state, [record])
            except BaseException:
                self._forget(state, record.name)
                raise
        return record

    def _load_or_create(self) -> LabState:
        state = self.state()
        if state is not None:
            return state
        subnet = ipaddress.IPv4Network(self._subnet or network.default_subnet(self.lab_id))
        users = network.subnet_users(subnet, self.bridge)
        if users:
            raise LabError(
                f"lab {self.layout.state_dir}: subnet {subnet} is taken ({'; '.join(users)}); "
                "choose another with --subnet (or LAB_SUBNET), e.g. 10.150.7.0/24"
            )
        tree = ensure_base_tree(self.layout.cache_dir)
        state = LabState(self.lab_id, self.name, self.bridge, str(subnet), str(tree))
        save_state(self.layout.state_file, state)
        return state

    def _loaded(self) -> LabState:
        state = self.state()
        if state is None:
            raise LabError(f"lab {self.layout.state_dir}: not up; start it with 'lab up'")
        return state

    def _start_network(self, state: LabState) -> None:
        subnet = ipaddress.IPv4Network(state.subnet)
        network.ensure_bridge(state.bridge, subnet)
        network.enable_nat(state.bridge, subnet, network.nat_tag(self.lab_id))
        if network.enable_forwarding():
            state.forwarding_turned_on = True
        access.ensure_keypair(self.layout)
        save_state(self.layout.state_file, state)

    def _record(self, state: LabState, spec: MachineSpec) -> MachineRecord:
        if spec.name in state.machines:
            return state.machines[spec.name]
        index = state.free_index()
        address = network.machine_address(ipaddress.IPv4Network(state.subnet), index)
        record = MachineRecord(
            name=spec.name,
            index=index,
            address=str(address),
            roles=list(spec.roles),
            tier=spec.tier,
            ram_gb=spec.ram_gb,
            netns=network.netns_name(self.lab_id, spec.name),
            host_if=network.host_interface(self.lab_id, index),
        )
        state.machines[spec.name] = record
        save_state(self.layout.state_file, state)
        return record

    def _boot(self, state: LabState, records: Sequence[MachineRecord]) -> None:
        """Prepare, boot and wait for ``records``; then tell the host and
        every machine about the lab's machines."""
        for record in records:
            self._prepare(state, record)
        self._publish(state)
        for record in records:
            record.pid = machine.boot(self.layout, self.lab_id, record)
        save_state(self.layout.state_file, state)
        machine.wait_until_ready(self.layout, self.lab_id, records, self.boot_timeout)
        write_inventory(self.layout, list(state.machines.values()), state.name)

    def _prepare(self, state: LabState, record: MachineRecord) -> None:
        """Give ``record`` its network namespace, root and identity files."""
        subnet = ipaddress.IPv4Network(state.subnet)
        address = ipaddress.IPv4Address(record.address)
        network.connect_machine(record.netns, record.host_if, state.bridge, address, subnet)
        root = machine.mount_root(self.layout, record.name, Path(state.base_tree))
        record.host_key = access.ensure_host_key(root)
        public_key = self.layout.private_key.with_suffix(".pub").read_text(encoding="utf-8")
        hosts = machine.hosts_file(self._by_index(state))
        machine.write_identity(root, record.name, hosts, public_key)
        save_state(self.layout.state_file, state)

    def _publish(self, state: LabState) -> None:
        """Write /etc/hosts into every machine, and the host's known_hosts
        and ssh config, listing every machine of the lab."""
        records = self._by_index(state)
        hosts = machine.hosts_file(records)
        for record in records:
            machine.write_hosts(self.layout.machine_root(record.name), hosts)
        access.write_known_hosts(self.layout, [(r.name, r.address, r.host_key) for r in records])
        access.write_ssh_config(self.layout, [(r.name, r.address) for r in records])

    @staticmethod
    def _by_index(state: LabState) -> list[MachineRecord]:
        return sorted(state.machines.values(), key=lambda record: record.index)

    def remove(self, name: str) -> None:
        """Remove machine ``name`` and its disk from a lab that is up; the
        other machines, known_hosts and the inventory forget it."""
        check_requirements()
        with self._locked():
            state = self._loaded()
            self._find(state, name)
            self._forget(state, name)

    def _forget(self, state: LabState, name: str) -> None:
        """Remove machine ``name``, then rewrite hosts, known_hosts and the
        inventory without it."""
        self._remove_machine(state, name)
        self._publish(state)
        write_inventory(self.layout, self._by_index(state), state.name)

    # --- faults --------------------------------------------------------------

    def stop(self, name: str) -> None:
        """Shut machine ``name`` down cleanly; its disk and address stay."""
        with self._locked():
            state = self._loaded()
            record = self._find(state, name)
            machine.stop(self.lab_id, record)
            record.pid = 0
            save_state(self.layout.state_file, state)

    def kill(self, name: str) -> None:
        """Stop machine ``name`` abruptly: SIGKILL every process of it, as a
        power cut would. Its disk and address stay for a restart."""
        with self._locked():
            state = self._loaded()
            record = self._find(state, name)
            groups = cgroups.machine_cgroups(self.lab_id, name)
            cgroups.kill_cgroups(groups)
            cgroups.remove_cgroups(groups)
            record.pid = 0
            save_state(self.layout.state_file, state)
            log.info("machine %s: killed", name)

    def restart(self, name: str) -> None:
        """Boot machine ``name`` again (shutting it down first if it runs),
        with the same address and disk; return once SSH answers. Raises
        LabError if it does not come back; then it is left stopped."""
        with self._locked():
            state = self._loaded()
            record = self._find(state, name)
            machine.stop(self.lab_id, record)
            try:
                self._boot(state, [record])
            except BaseException:
                cgroups.kill_cgroups(cgroups.machine_cgroups(self.lab_id, name))
                raise

    def cut(self, name: str) -> None:
        """Cut machine ``name`` off the network (host side of its veth down);
        it keeps running."""
        self._set_link(name, cut=True)

    def restore(self, name: str) -> None:
        """Reconnect machine ``name`` after ``cut``."""
        self._set_link(name, cut=False)

    def _set_link(self, name: str, *, cut: bool) -> None:
        with self._locked():
            state = self._loaded()
            record = self._find(state, name)
            if cut:
                network.cut_link(record.host_if)
            else:
                network.restore_link(record.host_if)
            record.cut = cut
            save_state(self.layout.state_file, state)
            log.info("machine %s: network %s", name, "cut" if cut else "restored")

    # --- taking it down ------------------------------------------------------

    def down(self) -> None:
        """Remove the lab: machines, their disks, namespaces, veths, bridge,
        NAT rules, cgroups, mounts and inventory, including what a crashed
        run left behind. Keeps the SSH key. Safe when nothing is up."""
        if not self._anything_left() and os.geteuid() != 0:
            return
        check_requirements()
        with self._locked():
            self._teardown(self.state())

    def _anything_left(self) -> bool:
        return self.layout.state_file.exists() or self.layout.machines_dir.exists()

    def _machine_names(self, state: LabState | None) -> set[str]:
        names = set(state.machines) if state else set()
        if self.layout.machines_dir.is_dir():
            names.update(path.name for path in self.layout.machines_dir.iterdir())
        for parent in cgroups.lab_cgroups(self.lab_id):
            if parent.is_dir():
                names.update(path.name for path in parent.iterdir() if path.is_dir())
        return names

    def _teardown(self, state: LabState | None) -> None:
        for name in sorted(self._machine_names(state)):
            self._remove_machine(state, name)
        self._unmount_leftovers()
        prefix = network.bridge_name(self.lab_id)
        for netns in network.lab_namespaces(prefix + "-"):
            network.delete_namespace(netns)
        for link in sorted(network.lab_interfaces(self.lab_id), key=len, reverse=True):
            network.delete_link(link)
        network.disable_nat(network.nat_tag(self.lab_id))
        cgroups.remove_cgroups(cgroups.lab_cgroups(self.lab_id))
        if state is not None and state.forwarding_turned_on:
            network.restore_forwarding()
        self._remove_files()
        log.info("lab %s: down", self.layout.state_dir)

    def _remove_machine(self, state: LabState | None, name: str) -> None:
        """Kill machine ``name`` and remove its cgroups, mount, network and
        disk, and its record from ``state``."""
        groups = cgroups.machine_cgroups(self.lab_id, name)
        cgroups.kill_cgroups(groups)
        cgroups.remove_cgroups(groups)
        machine.unmount(self.layout.machine_root(name))
        machine.forget(self.lab_id, name)
        if state is not None and name in state.machines:
            network.delete_namespace(state.machines.pop(name).netns)
            save_state(self.layout.state_file, state)
        self._remove_tree(self.layout.machine_dir(name))
        log.info("machine %s: removed", name)

    def _unmount_leftovers(self) -> None:
        inside = [p for p in machine.mount_points() if p.is_relative_to(self.layout.state_dir)]
        for mount_point in sorted(inside, key=lambda p: len(p.parts), reverse=True):
            machine.unmount(mount_point)

    def _remove_tree(self, path: Path) -> None:
        """Delete ``path``, refusing if anything is still mounted inside it."""
        if any(p.is_relative_to(path) for p in machine.mount_points()):
            raise LabError(f"{path}: still has mounts inside; not deleting it")
        shutil.rmtree(path, ignore_errors=True)

    def _remove_files(self) -> None:
        self._remove_tree(self.layout.machines_dir)
        # A new lab is a new cluster: its secrets, facts and env go with it.
        for directory in (
            self.layout.inventory_dir,
            self.layout.secrets_dir,
            self.layout.facts_dir.parent,
        ):
            shutil.rmtree(directory, ignore_errors=True)
        for path in (
            self.layout.env_file,
            self.layout.state_file,
            self.layout.known_hosts,
            self.layout.ssh_config,
        ):
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with hold_lock(self.layout.lock_file, wait=False):
            yield
