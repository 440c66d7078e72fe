#!/usr/bin/python
"""Ansible module: submit a run to the lab's inference cluster."""

from __future__ import annotations

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

DOCUMENTATION = r"""
module: research_submit
short_description: Submit a model-inference run to the research cluster
description:
  - Submits a run to the controller's API, which sends it to the smallest
    hardware tier that can serve it, and by default waits for its result.
  - In check mode nothing is queued; the module returns the dispatcher's
    explanation of where the run would go, and fails if it would be refused.
  - Talks HTTP only, so it runs on any host that reaches the controller;
    usually C(delegate_to: localhost).
options:
  api_url:
    description: The controller's URL. Defaults to the C(LAB_API_URL) environment variable.
    type: str
  token:
    description: A researcher's token. Defaults to C(LAB_TOKEN).
    type: str
  model:
    description: Catalog name of the model, e.g. C(gemma3-270m).
    type: str
  prompt:
    description: One prompt.
    type: str
  prompts:
    description: Several prompts, each generated in turn.
    type: list
    elements: str
  max_tokens:
    description: Tokens to generate per prompt.
    type: int
  temperature:
    description: Sampling temperature; 0 is greedy.
    type: float
  seed:
    description: Sampling seed.
    type: int
  runtime:
    description: The runtime; defaults to the model's.
    type: str
    choices: [llama_cpp, command, noop]
  argv:
    description: Program and arguments of a C(command) run.
    type: list
    elements: str
  ram_gb:
    description: RAM the run needs beyond its model.
    type: float
  labels:
    description: Free-form labels kept with the run.
    type: dict
  wait:
    description: Wait for the run to finish and return its result.
    type: bool
    default: true
  timeout:
    description: With I(wait), fail after this many seconds (the run goes on).
    type: float
    default: 3600
author:
  - research-orchestration developers
"""

EXAMPLES = r"""
# On the control node, run it with the Python that runs Ansible:
#   vars: {ansible_python_interpreter: "{{ ansible_playbook_python }}"}
- name: Ask Gemma for a haiku and keep the result
  research_submit:
    model: gemma3-270m
    prompt: Write a haiku about queues.
    max_tokens: 48
    labels: {campaign: haiku}
  delegate_to: localhost
  register: haiku

- name: Queue a sweep without waiting
  research_submit:
    model: gemma3-270m
    prompt: "{{ item }}"
    wait: false
  loop: "{{ prompts }}"
  delegate_to: localhost
"""

RETURN = r"""
run_id:
  description: The run's id (absent in check mode).
  returned: when submitted
  type: str
queue:
  description: The queue the dispatcher chose.
  returned: always
  type: str
state:
  description: queued, succeeded, failed or cancelled.
  returned: when submitted
  type: str
result:
  description: The run's result (output, tokens, timings, telemetry, node).
  returned: when waited for and succeeded
  type: dict
decision:
  description: The dispatcher's explanation (check mode, or when refused).
  returned: in check mode or on refusal
  type: dict
"""

_REQUEST_FIELDS = (
    "model",
    "prompt",
    "prompts",
    "max_tokens",
    "temperature",
    "seed",
    "runtime",
    "argv",
    "ram_gb",
    "labels",
)


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(body.get("error", {}).get("reason", "request failed"))
        self.status = status
        self.body = body


def call(url, token, method, path, body=None):
    """Return the JSON answer of the API, or raise ApiError with its reason."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        response = open_url(url + path, data=data, headers=headers, method=method, timeout=30)
        return json.loads(response.read())
    except Exception as exc:  # HTTPError carries the API's JSON reason
        status = getattr(exc, "code", None)
        try:
            payload = json.loads(exc.read()) if hasattr(exc, "read") else {}
        except ValueError:
            payload = {}
        if not payload:
            payload = {"error": {"reason": f"cannot reach the controller at {url}: {exc}"}}
        raise ApiError(status, payload) from None


def wait_for(url, token, run_id, timeout):
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        status = call(url, token, "GET", f"/v1/runs/{run_id}")
        if status["state"] in ("succeeded", "failed", "cancelled"):
            return status
        if time.monotonic() > deadline:
            return status
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def main():
    spec = {
        "api_url": {"type": "str"},
        "token": {"type": "str", "no_log": True},
        "model": {"type": "str"},
        "prompt": {"type": "str"},
        "prompts": {"type": "list", "elements": "str"},
        "max_tokens": {"type": "int"},
        "temperature": {"type": "float"},
        "seed": {"type": "int"},
        "runtime": {"type": "str", "choices": ["llama_cpp", "command", "noop"]},
        "argv": {"type": "list", "elements": "str"},
        "ram_gb": {"type": "float"},
        "labels": {"type": "dict"},
        "wait": {"type": "bool", "default": True},
        "timeout": {"type": "float", "default": 3600},
    }
    module = AnsibleModule(
        argument_spec=spec, supports_check_mode=True, mutually_exclusive=[("prompt", "prompts")]
    )
    params = module.params
    url = (params["api_url"] or os.environ.get("LAB_API_URL", "")).rstrip("/")
    token = params["token"] or os.environ.get("LAB_TOKEN", "")
    if not url or not token:
        module.fail_json(msg="set api_url and token, or LAB_API_URL and LAB_TOKEN")
    body = {key: params[key] for key in _REQUEST_FIELDS if params[key] is not None}
    try:
        if module.check_mode:
            decision = call(url, token, "POST", "/v1/runs/explain", body)
            if decision["refused"]:
                module.fail_json(msg=f"refused: {decision['reason']}", decision=decision)
            module.exit_json(changed=True, queue=decision["queue"], decision=decision)
        submitted = call(url, token, "POST", "/v1/runs", body)
    except ApiError as exc:
        decision = exc.body.get("error", {}).get("decision")
        prefix = "refused: " if exc.status == 409 else ""
        module.fail_json(msg=f"{prefix}{exc}", status=exc.status, decision=decision)
    outcome = {
        "changed": True,
        "run_id": submitted["run_id"],
        "queue": submitted["queue"],
        "state": "queued",
    }
    if not params["wait"]:
        module.exit_json(**outcome)
    try:
        final = wait_for(url, token, submitted["run_id"], params["timeout"])
    except ApiError as exc:
        module.fail_json(msg=str(exc), **outcome)
    outcome.update(state=final["state"], result=final.get("result"), node_id=final["node_id"])
    if final["state"] != "succeeded":
        reason = (final.get("error") or {}).get("message") or f"still {final['state']}"
        module.fail_json(msg=f"run {final['run_id']} {final['state']}: {reason}", **outcome)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
