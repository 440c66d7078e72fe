"""Inventory build time: the node_profiles plugin against a static inventory.

Generates 5,000 node profiles and a static YAML inventory holding the same
hosts, groups and host variables, then builds both with Ansible's own
inventory manager (in process, the cost the plugin adds) and with
`ansible-inventory --list` (what an operator waits for), interleaved.

    .venv/bin/python benchmarks/inventory.py [--nodes 5000] [--rounds 7] [--cli-rounds 3]
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Row, arguments, command, interleaved, record, timed  # noqa: E402
from controller.profiles import NodeProfile, load_fleet  # noqa: E402

AIM = 1.5


def generate_profiles(directory: Path, count: int, seed: int = 7) -> None:
    """Write ``count`` plausible profiles of a mixed fleet into ``directory``."""
    rng = random.Random(seed)
    shapes = [
        (1.8, 4, "aarch64"),
        (3.8, 4, "aarch64"),
        (7.6, 4, "x86_64"),
        (15.5, 8, "x86_64"),
        (31.2, 16, "x86_64"),
        (62.8, 32, "x86_64"),
    ]
    directory.mkdir(parents=True)
    for index in range(count):
        ram_gb, cpus, arch = rng.choice(shapes)
        gpu = ram_gb > 60
        profile: dict[str, Any] = {
            "node_id": f"node-{index:05d}",
            "address": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}",
            "roles": ["controller", "worker"] if index == 0 else ["worker"],
            "ram_gb": ram_gb,
            "cpus": cpus,
            "arch": arch,
            "labels": {"rack": f"r{index % 40}"},
        }
        if gpu:
            profile.update(gpu=True, gpu_memory_gb=24)
        path = directory / f"{profile['node_id']}.yaml"
        path.write_text(yaml.safe_dump(profile, sort_keys=False))


def static_inventory(fleet: list[NodeProfile]) -> dict[str, Any]:
    """Return the YAML inventory that holds what the plugin would build."""
    groups: dict[str, dict[str, Any]] = {}

    def member(group: str, host: str, variables: dict[str, Any] | None = None) -> None:
        groups.setdefault(group, {"hosts": {}})["hosts"][host] = variables

    for node in fleet:
        variables = {
            "ansible_host": node.address,
            "node_id": node.node_id,
            "node_tier": node.tier,
            "node_roles": list(node.roles),
            "node_ram_gb": node.ram_gb,
            "node_cpus": node.cpus,
            "node_arch": node.arch,
            "node_gpu": node.gpu,
            "node_gpu_memory_gb": node.gpu_memory_gb,
            "node_labels": dict(node.labels),
            "node_profile_path": node.source,
            **{f"label_{k}": v for k, v in node.labels.items()},
        }
        if node.is_worker:
            variables["celery_queues"] = node.queues()
            member("workers", node.node_id)
            member(f"tier_{node.tier}", node.node_id)
        if node.is_controller:
            member("controller", node.node_id)
        if node.gpu:
            member("gpu", node.node_id)
        member("nodes", node.node_id, variables)
    return {"all": {"children": groups}}


def build_in_process(source: Path) -> None:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    InventoryManager(DataLoader(), sources=[str(source)])


def build_with_cli(source: Path) -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-inventory"), "-i", str(source), "--list"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7, help="rounds in process")
    parser.add_argument("--cli-rounds", type=int, default=3, help="rounds of the CLI")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.rounds, args.cli_rounds = 20, 2, 2
    began = time.monotonic()

    from ansible.plugins.loader import inventory_loader

    inventory_loader.add_directory(str(ROOT / "plugins" / "inventory"))
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    with tempfile.TemporaryDirectory() as work:
        plugin_source = Path(work) / "cluster.yml"
        shutil.copy(ROOT / "inventory" / "cluster.yml", plugin_source)
        generate_profiles(Path(work) / "nodes", args.nodes)
        static_source = Path(work) / "static" / "hosts.yaml"
        static_source.parent.mkdir()
        fleet = load_fleet(Path(work) / "nodes")
        static_source.write_text(yaml.safe_dump(static_inventory(fleet)))

        rows = []
        for how, build, rounds in (
            ("in process", build_in_process, args.rounds),
            ("ansible-inventory --list", build_with_cli, args.cli_rounds),
        ):
            figures = interleaved(
                {
                    "plugin": timed(lambda b=build: b(plugin_source)),
                    "static": timed(lambda b=build: b(static_source)),
                },
                rounds=rounds,
            )
            plugin, static = figures["plugin"], figures["static"]
            ratio = plugin.median / static.median
            rows.append(
                Row(
                    benchmark="inventory",
                    what=f"build a {args.nodes}-host inventory, {how}",
                    measured=f"node_profiles: {plugin.show('s')}",
                    reference=f"static YAML: {static.show('s')}",
                    ratio=round(ratio, 2),
                    aim=f"<= {AIM}",
                    met=ratio <= AIM,
                    command=command(),
                )
            )
            print(
                f"{how:26} plugin {plugin.show('s')}  static {static.show('s')}  "
                f"ratio {ratio:.2f} (aim <= {AIM})"
            )
    path = record("inventory", rows, results=args.results, seconds=time.monotonic() - began)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
