"""Boot, inspect, break and remove a lab of Debian machines on this host.

Each machine is a systemd-nspawn container with systemd as PID 1, sshd,
its own address on the lab's bridge and NAT to the outside. The lab keeps
its state, inventory and SSH key in its state directory (.lab by default).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lab.basetree import ensure_base_tree
from lab.errors import LabError
from lab.layout import default_cache_dir, default_state_dir
from lab.lifecycle import Lab
from lab.preflight import check_requirements
from lab.provision import controller_address, demo_run, ensure_model, run_playbook, write_env
from lab.shape import make_spec, parse_spec

__all__ = ["main"]


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="the lab's state directory (default: $LAB_STATE_DIR or .lab)",
    )
    parser.add_argument(
        "--name", default="lab", help="prefix of the default machines' names (default: lab)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="where the base tree is cached (default: $CACHE or ~/.cache/research-orchestration)",
    )
    parser.add_argument(
        "--subnet",
        default=os.environ.get("LAB_SUBNET"),
        help="the lab's IPv4 /24 (default: $LAB_SUBNET, else derived from the state directory)",
    )
    parser.add_argument(
        "--boot-timeout",
        type=float,
        default=60.0,
        help="seconds a machine has to answer SSH (default: 60)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every host command")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    _common_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("build", help="build (or find) the cached Debian base tree")
    up = commands.add_parser("up", help="boot the lab (default: controller, micro, small)")
    up.add_argument(
        "--machine",
        dest="machines",
        action="append",
        type=parse_spec,
        metavar="NAME:ROLES[:TIER]",
        help="boot this machine instead of the default shape (repeatable), "
        "e.g. lab-w-1:worker:small or lab-c:controller,worker:small",
    )
    add = commands.add_parser("add", help="boot one more machine in a running lab")
    add.add_argument("machine", metavar="NAME")
    add.add_argument("--roles", default="worker", help="comma-separated (default: worker)")
    add.add_argument("--tier", default="micro", help="micro, small, medium, large")
    remove = commands.add_parser("remove", help="remove one machine from a running lab")
    remove.add_argument("machine", metavar="NAME")
    commands.add_parser("down", help="remove the lab and whatever a crashed run left")
    status = commands.add_parser("status", help="list the machines")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    _provision_parser(commands)
    for name, text in (
        ("stop", "shut a machine down cleanly"),
        ("kill", "SIGKILL every process of a machine (a power cut)"),
        ("restart", "boot a machine again: same address, same disk"),
        ("cut", "cut a machine off the network (it keeps running)"),
        ("restore", "reconnect a machine after cut"),
    ):
        commands.add_parser(name, help=text).add_argument("machine", metavar="NAME")
    for name, text in (
        ("exec", "run a command inside a machine (nsenter, no SSH)"),
        ("ssh", "run a command (or a shell) on a machine over SSH"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("machine", metavar="NAME")
        command.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    return parser


def _provision_parser(commands: Any) -> None:
    provision = commands.add_parser(
        "provision",
        help="run site.yml (or --playbook) on the lab through ansible-runner; after "
        "site.yml, write the env file and submit a demo run",
    )
    provision.add_argument("--playbook", default="site.yml", help="relative to the repository")
    provision.add_argument("--limit", help="as ansible-playbook --limit")
    provision.add_argument("--check", action="store_true", help="as ansible-playbook --check")
    provision.add_argument(
        "-e",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra variable (repeatable)",
    )
    provision.add_argument("--no-demo", action="store_true", help="skip the demo run")
    provision.add_argument(
        "--timings", action="store_true", help="list the slowest tasks after the recap"
    )
    provision.add_argument(
        "--prompt",
        default="Write one sentence about the sea.",
        help="the demo run's prompt",
    )


def _provision(lab: Lab, args: argparse.Namespace) -> None:
    """Run a playbook on the lab; after a full site.yml, write the env file
    and submit the demo run. Raises LabError when the run fails."""
    ensure_model(lab.layout.cache_dir)
    extra = dict(item.partition("=")[::2] for item in args.extra)
    outcome = run_playbook(
        lab.layout, args.playbook, limit=args.limit, check=args.check, extravars=extra
    )
    print(outcome.recap())
    if args.timings:
        for task, seconds in outcome.slowest(15):
            print(f"  {seconds:6.1f} s  {task}")
    if not outcome.ok:
        raise LabError(f"{args.playbook}: failed on the lab")
    if args.playbook != "site.yml" or args.check or args.limit:
        return
    machines = {m.address: m.roles for m in lab.status()}
    env = write_env(lab.layout, controller_address(machines))
    print(f"env:       . {env} && research-submit --model gemma3-270m --prompt ... --wait")
    if not args.no_demo:
        demo_run(lab.layout, args.prompt)


def _print_status(lab: Lab, as_json: bool) -> None:
    machines = lab.status()
    if as_json:
        print(json.dumps([asdict(machine) for machine in machines], indent=2))
        return
    if not machines:
        print(f"lab {lab.layout.state_dir}: not up")
        return
    for machine in machines:
        state = "running" if machine.running else "stopped"
        cut = ", network cut" if machine.cut else ""
        roles = ",".join(machine.roles)
        print(
            f"{machine.name:<20} {machine.address:<15} {roles:<18} {machine.tier:<7} {state}{cut}"
        )
    print(f"inventory: {lab.layout.cluster_file}")
    print(f"ssh:       ssh -F {lab.layout.ssh_config} NAME")


def _replace_process(argv: Sequence[str]) -> None:
    sys.stdout.flush()
    os.execvp(argv[0], list(argv))


def _command_argv(argv: Sequence[str]) -> list[str]:
    return list(argv[1:] if argv[:1] == ["--"] else argv)


def _dispatch(args: argparse.Namespace, lab: Lab) -> None:
    name = str(getattr(args, "machine", ""))
    actions: dict[str, Callable[[], object]] = {
        "up": lambda: lab.up(args.machines),
        "add": lambda: lab.add(make_spec(name, tuple(args.roles.split(",")), args.tier)),
        "remove": lambda: lab.remove(name),
        "down": lab.down,
        "provision": lambda: _provision(lab, args),
        "status": lambda: _print_status(lab, args.json),
        "stop": lambda: lab.stop(name),
        "kill": lambda: lab.kill(name),
        "restart": lambda: lab.restart(name),
        "cut": lambda: lab.cut(name),
        "restore": lambda: lab.restore(name),
        "exec": lambda: _replace_process(lab.exec_argv(name, _command_argv(args.argv))),
        "ssh": lambda: _replace_process(lab.ssh_argv(name, _command_argv(args.argv))),
    }
    actions[args.command]()
    if args.command in ("up", "add"):
        _print_status(lab, as_json=False)


def _build(cache_dir: Path) -> None:
    check_requirements()
    print(ensure_base_tree(cache_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lab command line; return the exit status (1 on a LabError,
    whose message is printed)."""
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="lab: %(message)s")
    lab = Lab(
        args.state_dir,
        name=args.name,
        cache_dir=args.cache_dir,
        subnet=args.subnet,
        boot_timeout=args.boot_timeout,
    )
    try:
        if args.command == "build":
            _build(args.cache_dir)
        else:
            _dispatch(args, lab)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
