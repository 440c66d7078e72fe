"""Provisioning time on the lab: the first site.yml run against the second
(idempotent) one and a --check run, on fresh lab machines each round.

Each round boots the default lab (controller, micro, small) from the cached
base tree, runs site.yml (the first run: packages, wheels, models, services),
runs it again (nothing to change) and once more with --check, through
ansible-runner with pipelining and fact caching on, then takes the lab down.
Needs root and the lab's Debian packages (see docs/lab.md).

    .venv/bin/python benchmarks/provisioning.py [--rounds 2]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import Figure, Row, arguments, command, machine, record  # noqa: E402
from lab import Lab  # noqa: E402
from lab.provision import ensure_model, run_playbook  # noqa: E402

NAME = "provisioning"
AIM = 0.25


def one_round(lab: Lab) -> tuple[float, float, float]:
    """Return the wall seconds of the first, second and check-mode runs."""
    lab.down()
    lab.up()
    try:
        runs = []
        for check in (False, False, True):
            outcome = run_playbook(lab.layout, "site.yml", check=check, say=lambda line: None)
            if not outcome.ok:
                raise SystemExit(f"site.yml failed:\n{outcome.recap()}")
            runs.append(outcome.wall_s)
        return runs[0], runs[1], runs[2]
    finally:
        lab.down()


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rounds = max(2, args.rounds)  # no quick mode: a round is a whole lab
    cache = Path(os.environ.get("CACHE") or Path.home() / ".cache" / "research-orchestration")
    lab = Lab(cache / "labs" / "bench-provisioning")
    ensure_model(lab.layout.cache_dir)
    started = time.monotonic()
    samples = [one_round(lab) for _ in range(rounds)]
    figures = [Figure.of([sample[i] for sample in samples]) for i in range(3)]
    rows = [
        Row(
            NAME,
            "site.yml, second (idempotent) run against the first, 3 lab machines",
            f"second run: {figures[1].show('s')}",
            f"first run: {figures[0].show('s')}",
            round(figures[1].median / figures[0].median, 3),
            f"<= {AIM}",
            figures[1].median / figures[0].median <= AIM,
            command(),
        ),
        Row(
            NAME,
            "site.yml --check on the converged lab against the first run",
            f"--check: {figures[2].show('s')}",
            f"first run: {figures[0].show('s')}",
            round(figures[2].median / figures[0].median, 3),
            "none (context: what a dry run costs)",
            None,
            command(),
        ),
    ]
    notes = [
        "Why the second run is far from free: every task still runs on every host to "
        "find there is nothing to do; the first run's own work is short because the "
        "wheels, the model and the Debian packages' downloads are cached.",
        f"Measured on {machine()}; each round on freshly booted lab machines.",
    ]
    for row in rows:
        print(f"{row.what}: {row.measured} vs {row.reference}: ratio {row.ratio}")
    record(NAME, rows, notes, args.results, time.monotonic() - started)


if __name__ == "__main__":
    main()
