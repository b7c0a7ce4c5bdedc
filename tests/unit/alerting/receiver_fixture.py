"""Local HTTP receivers that check PagerDuty Events API v2 and Slack webhook request shapes.

PagerDuty cannot be reached from here, so this stands in for it, checking what its docs say a
request must be (developer.pagerduty.com, Events API v2 "Send an alert event"): a JSON object
with `routing_key` (32 characters), `event_action` trigger|acknowledge|resolve, `dedup_key` (at
most 255 characters; required for resolve), and for trigger a `payload` with `summary` (at most
1024 characters), `source`, `severity` critical|error|warning|info, optional `timestamp`,
`custom_details` (object) and top-level `links` [{href, text}]. A good request gets 202
{"status": "success", "message": "Event processed", "dedup_key": ...}; a bad one 400
{"status": "invalid event", ...}. Slack incoming webhooks take `text` and optional `blocks`
(each with a `type`) and answer 200 "ok" or 400 "invalid_payload".

`script` queues statuses (503, 429, ...) answered before any checking, to simulate outages.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}


def pagerduty_errors(body: Any) -> list[str]:
    """What is wrong with a PagerDuty Events v2 request body ([] when it is valid)."""
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    errors = []
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("routing_key must be a 32-character string")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        errors.append(f"event_action must be one of {sorted(PD_ACTIONS)}")
    dedup = body.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("dedup_key must be a string of at most 255 characters")
    if action in {"resolve", "acknowledge"} and not dedup:
        errors.append(f"dedup_key is required for {action}")
    if action == "trigger":
        p = body.get("payload")
        if not isinstance(p, dict):
            return [*errors, "payload is required for trigger"]
        if not isinstance(p.get("summary"), str) or not p["summary"]:
            errors.append("payload.summary is required")
        elif len(p["summary"]) > 1024:
            errors.append("payload.summary is longer than 1024 characters")
        if not isinstance(p.get("source"), str) or not p["source"]:
            errors.append("payload.source is required")
        if p.get("severity") not in PD_SEVERITIES:
            errors.append(f"payload.severity must be one of {sorted(PD_SEVERITIES)}")
        if "custom_details" in p and not isinstance(p["custom_details"], dict | str):
            errors.append("payload.custom_details must be an object")
        for link in body.get("links", []):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                errors.append("links must be objects with href")
    return errors


def slack_errors(body: Any) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        return ["text is required"]
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or any("type" not in b for b in blocks):
        return ["blocks must be a list of objects with a type"]
    return []


class Receiver:
    """A loopback HTTP server recording requests; `kind` is "pagerduty" or "slack"."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.script: list[int] = []
        self.requests: list[dict[str, Any]] = []  # every request, answered or not
        self.accepted: list[dict[str, Any]] = []  # bodies answered 2xx
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, reply = receiver.answer(self.path, self.headers, raw)
                data = reply.encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, headers: Any, raw: bytes) -> tuple[int, str]:
        with self.lock:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = None
            self.requests.append({"path": path, "body": body, "ctype": headers["Content-Type"]})
            if self.script:
                return self.script.pop(0), '{"status": "unavailable"}'
            if headers["Content-Type"] != "application/json":
                return 400, "content type must be application/json"
            if self.kind == "pagerduty":
                errors = pagerduty_errors(body)
                if errors:
                    reply = {"status": "invalid event", "message": "Event object is invalid"}
                    return 400, json.dumps({**reply, "errors": errors})
                self.accepted.append(body)
                reply = {"status": "success", "message": "Event processed"}
                return 202, json.dumps({**reply, "dedup_key": body.get("dedup_key")})
            errors = slack_errors(body)
            if errors:
                return 400, "invalid_payload"
            self.accepted.append(body)
            return 200, "ok"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
