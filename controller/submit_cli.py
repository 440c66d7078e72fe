"""research-submit: submit a run to the lab's inference cluster.

Prints the run id and its queue at once. With --wait, shows progress until
the run finishes and prints its output and telemetry summary; with --json,
prints one JSON document instead. With --explain, shows where the run would
go and why, and queues nothing.

Configuration: LAB_API_URL and LAB_TOKEN from the environment, or KEY=value
lines in $LAB_CONFIG (default ~/.config/research-orchestration/client.env).

Exit codes: 0 succeeded (or queued, without --wait), 1 the run failed or was
cancelled, 2 bad usage or configuration, 3 refused (no node can serve it),
4 the controller could not be reached or rejected the request, 5 --timeout
passed before the run finished.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller.submit import (
    Client,
    ConfigMissing,
    RunRefused,
    RunTimeout,
    SubmitError,
    run_body,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_ERROR, EXIT_TIMEOUT = range(6)


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    parse = argparse.ArgumentParser(
        prog="research-submit",
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument("--model", help="catalog name of the model, e.g. gemma3-270m")
    parse.add_argument(
        "--prompt",
        action="append",
        dest="prompts",
        metavar="TEXT",
        help="a prompt; repeat for several",
    )
    parse.add_argument("--max-tokens", type=int, help="tokens to generate per prompt")
    parse.add_argument("--temperature", type=float)
    parse.add_argument("--seed", type=int)
    parse.add_argument("--runtime", choices=["llama_cpp", "command", "noop"])
    parse.add_argument(
        "--argv", nargs="+", metavar="ARG", help="program and arguments for the command runtime"
    )
    parse.add_argument("--ram-gb", type=float, help="RAM the run needs beyond its model")
    parse.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label kept with the run; repeat for several",
    )
    parse.add_argument("--wait", action="store_true", help="wait for the result")
    parse.add_argument("--timeout", type=float, help="with --wait: give up after SECONDS")
    parse.add_argument(
        "--explain", action="store_true", help="show where the run would go and why; queue nothing"
    )
    parse.add_argument("--json", action="store_true", help="print one JSON document")
    parse.add_argument("--api-url", help="the controller's URL (default: LAB_API_URL)")
    return parse


def request_options(args: argparse.Namespace) -> dict[str, Any]:
    labels = dict(label.split("=", 1) for label in args.label if "=" in label)
    prompts = args.prompts or []
    return run_body(
        args.model,
        prompts[0] if len(prompts) == 1 else None,
        prompts=prompts if len(prompts) > 1 else None,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        runtime=args.runtime,
        argv=args.argv,
        ram_gb=args.ram_gb,
        labels=labels or None,
    )


def describe_progress(status: dict[str, Any]) -> str:
    state = status["state"]
    if state == "queued":
        return (
            f"queued on {status['queue']} (depth {status.get('queue_depth', '?')}, "
            f"waiting {status.get('waiting_s', 0):.1f} s)"
        )
    if state == "running":
        return f"running on {status.get('node_id') or 'a worker'}"
    return str(state)


def describe_result(status: dict[str, Any]) -> str:
    """Return a human summary of a finished run."""
    lines = [f"run {status['run_id']}: {status['state']} on {status.get('node_id') or '-'}"]
    if status.get("error"):
        error = status["error"]
        lines.append(f"error: {error.get('type')}: {error.get('message')}")
    result = status.get("result") or {}
    output = result.get("output")
    for index, text in enumerate(output if isinstance(output, list) else [output]):
        if text:
            lines.append(
                f"output[{index}]: {text}" if isinstance(output, list) else f"output: {text}"
            )
    tokens, timings = result.get("tokens") or {}, result.get("timings") or {}
    if tokens:
        lines.append(
            f"tokens: prompt {tokens.get('prompt')}, completion "
            f"{tokens.get('completion')}; "
            f"{timings.get('tokens_per_s') or 0:.1f} tokens/s"
        )
    summary = (result.get("telemetry") or {}).get("summary") or {}
    if summary:
        lines.append(
            "telemetry: "
            + ", ".join(
                f"{k} {v}" for k, v in sorted(summary.items()) if not isinstance(v, dict | list)
            )
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, out: Any, err: Any) -> int:
    client = Client(api_url=args.api_url)
    options = request_options(args)
    if args.explain:
        decision = client.explain(**options)
        print(json.dumps(decision, indent=2) if args.json else _explanation(decision), file=out)
        return EXIT_REFUSED if decision["refused"] else EXIT_OK
    submitted = client.submit(**options)
    if not args.json:
        print(f"{submitted.run_id} queued on {submitted.queue}", file=out, flush=True)
    if not args.wait:
        if args.json:
            print(
                json.dumps(
                    {
                        "run_id": submitted.run_id,
                        "queue": submitted.queue,
                        "reason": submitted.reason,
                    }
                ),
                file=out,
            )
        return EXIT_OK

    def progress(status: dict[str, Any]) -> None:
        if not args.json:
            print(f"  {describe_progress(status)}", file=err, flush=True)

    final = client.wait(submitted.run_id, args.timeout, progress)
    print(json.dumps(final, indent=2) if args.json else describe_result(final), file=out)
    return EXIT_OK if final["state"] == "succeeded" else EXIT_FAILED


def _explanation(decision: dict[str, Any]) -> str:
    head = "refused: " if decision["refused"] else f"would queue on {decision['queue']}: "
    lines = [head + decision["reason"]]
    for check in decision["considered"]:
        mark = "taken " if check["taken"] else "passed"
        lines.append(f"  {mark} {check['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (args.model or args.argv or args.runtime or args.ram_gb):
        parser().error("give --model, or --argv for a command run, or --runtime noop")
    try:
        return run(args, sys.stdout, sys.stderr)
    except ConfigMissing as exc:
        print(f"research-submit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunRefused as exc:
        if args.json:
            print(json.dumps(exc.body, indent=2))
        print(f"research-submit: refused: {exc.reason}", file=sys.stderr)
        return EXIT_REFUSED
    except RunTimeout as exc:
        print(f"research-submit: {exc.reason}", file=sys.stderr)
        return EXIT_TIMEOUT
    except SubmitError as exc:
        print(f"research-submit: {exc.reason}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
