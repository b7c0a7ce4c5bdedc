"""Alert routing configuration: which kinds and severities go to which receivers.

Read at call time (never at import) from, in order:

1. `$GENLINE_ALERTING_CONFIG`, else `<state>/alerting.toml` when it exists (the state dir is
   `$GENLINE_HOME`, so Dagster, the CLI and every kfp step subprocess read the same file);
2. environment variables, which enable receivers and override endpoints:
   `GENLINE_ALERTMANAGER_URL`, `GENLINE_PAGERDUTY_ROUTING_KEY` (+ optional
   `GENLINE_PAGERDUTY_URL`), `GENLINE_SLACK_WEBHOOK_URL`.

Secrets (the PagerDuty routing key, the Slack webhook URL) live only in the environment: the
file names the variable that holds them (`routing_key_env`, `webhook_url_env`), a literal secret
in the file is refused, and nothing here stores or logs their values.

    hold_down_s = 300        # a resolve is held this long; a re-fire inside it keeps one incident
    max_attempts = 8         # failed tries before an event is dead-lettered
    [alertmanager]
    url = "http://127.0.0.1:9093"
    [pagerduty]
    routing_key_env = "GENLINE_PAGERDUTY_ROUTING_KEY"
    [[route]]                # without routes: alertmanager gets all, pagerduty critical,
    receiver = "pagerduty"   # slack warning and up; the file sink always gets everything
    kinds = ["pipeline.*", "publish.failed"]
    min_severity = "critical"
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genline.alerting.model import SEVERITIES
from genline.paths import state_dir

CONFIG_ENV = "GENLINE_ALERTING_CONFIG"
CONFIG_FILE = "alerting.toml"
AM_URL_ENV = "GENLINE_ALERTMANAGER_URL"
PD_KEY_ENV = "GENLINE_PAGERDUTY_ROUTING_KEY"
PD_URL_ENV = "GENLINE_PAGERDUTY_URL"
SLACK_URL_ENV = "GENLINE_SLACK_WEBHOOK_URL"
PD_DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
RECEIVERS = ("file", "alertmanager", "pagerduty", "slack")
_DEFAULT_MIN = {"alertmanager": "info", "pagerduty": "critical", "slack": "warning"}


class AlertingConfigError(ValueError):
    """The alerting configuration is invalid; the message names the file and the setting."""


@dataclass(frozen=True)
class Route:
    """Send alerts whose kind matches one of `kinds` (glob) at `min_severity` or above."""

    receiver: str
    kinds: tuple[str, ...] = ("*",)
    min_severity: str = "info"

    def matches(self, kind: str, severity: str) -> bool:
        rank = SEVERITIES.index
        return rank(severity) >= rank(self.min_severity) and any(
            fnmatch.fnmatchcase(kind, k) for k in self.kinds
        )


@dataclass(frozen=True)
class AlertingConfig:
    """Receivers, routes and delivery policy (frozen; build with `load_config`).

    Attributes:
        alertmanager_url: base URL of Alertmanager ("" = not configured).
        pagerduty_url: the Events API v2 enqueue URL.
        pagerduty_key_env: the variable holding the routing key (read at delivery time).
        slack_url_env: the variable holding the Slack incoming-webhook URL.
        routes: explicit routes; empty = defaults for every configured receiver.
        hold_down_s: how long a resolve waits; a re-fire inside the window keeps the incident.
        max_attempts: failed delivery tries of one event before it is dead-lettered.
        backoff_s: first retry delay; doubles per try up to `backoff_max_s`.
        backoff_max_s: the longest delay between tries (also caps Retry-After).
        timeout_s: HTTP timeout per request.
        send_budget_s: how long `fire` may spend retrying inline before leaving the rest to
            `flush` (a kfp step must not hang on a receiver that is down).
        am_open_s: endsAt sent with a firing alert to Alertmanager (it treats an alert with no
            fresh re-send as resolved after that long).
    """

    alertmanager_url: str = ""
    pagerduty_url: str = PD_DEFAULT_URL
    pagerduty_key_env: str = PD_KEY_ENV
    slack_url_env: str = SLACK_URL_ENV
    routes: tuple[Route, ...] = ()
    hold_down_s: float = 300.0
    max_attempts: int = 8
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 5.0
    send_budget_s: float = 2.0
    am_open_s: float = 7 * 24 * 3600.0
    source_file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def enabled(self) -> tuple[str, ...]:
        """The receivers that can deliver now (the file sink always)."""
        out = ["file"]
        if self.alertmanager_url:
            out.append("alertmanager")
        if os.environ.get(self.pagerduty_key_env):
            out.append("pagerduty")
        if os.environ.get(self.slack_url_env):
            out.append("slack")
        return tuple(out)

    def receivers_for(self, kind: str, severity: str) -> tuple[str, ...]:
        """Which receivers an alert of `kind` and `severity` goes to (file first, always)."""
        enabled = self.enabled()
        routes = self.routes or tuple(Route(r, ("*",), _DEFAULT_MIN[r]) for r in enabled[1:])
        chosen = ["file"]
        for route in routes:
            if route.receiver in enabled and route.receiver not in chosen:
                if route.matches(kind, severity):
                    chosen.append(route.receiver)
        return tuple(chosen)


def config_path() -> Path:
    """Where the config file is looked for ($GENLINE_ALERTING_CONFIG or <state>/alerting.toml)."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser() if env else state_dir() / CONFIG_FILE


def _route(item: dict[str, Any], where: str) -> Route:
    receiver = item.get("receiver", "")
    if receiver not in RECEIVERS[1:]:
        raise AlertingConfigError(f"{where}: route receiver {receiver!r} not in {RECEIVERS[1:]}")
    kinds = item.get("kinds", ["*"])
    if isinstance(kinds, str):
        kinds = [kinds]
    severity = item.get("min_severity", "info")
    if severity not in SEVERITIES:
        raise AlertingConfigError(f"{where}: min_severity {severity!r} not in {SEVERITIES}")
    return Route(receiver, tuple(kinds), severity)


def load_config(path: str | Path | None = None) -> AlertingConfig:
    """The alerting configuration: the file (if any) overlaid with the environment.

    Args:
        path: a TOML file; default `config_path()` (missing file = defaults).

    Returns:
        The configuration.

    Raises:
        AlertingConfigError: malformed TOML, unknown receivers or severities, or a secret
            written into the file.
    """
    file = Path(path) if path is not None else config_path()
    data: dict[str, Any] = {}
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise AlertingConfigError(f"{file}: not valid TOML: {exc}") from exc
    elif path is not None:
        raise AlertingConfigError(f"alerting config {file} does not exist")
    am = data.get("alertmanager", {})
    pd = data.get("pagerduty", {})
    slack = data.get("slack", {})
    for section, name in ((pd, "routing_key"), (slack, "webhook_url")):
        if name in section:
            raise AlertingConfigError(
                f"{file}: {name} must not be written in the file; put it in the environment "
                f"and name the variable with {name}_env"
            )
    known = {"alertmanager", "pagerduty", "slack", "route"}
    policy = {k: v for k, v in data.items() if k not in known}
    numeric = (
        "hold_down_s",
        "max_attempts",
        "backoff_s",
        "backoff_max_s",
        "timeout_s",
        "send_budget_s",
        "am_open_s",
    )
    unknown = sorted(set(policy) - set(numeric))
    if unknown:
        raise AlertingConfigError(f"{file}: unknown setting(s) {unknown}; known: {numeric}")
    routes = tuple(_route(r, str(file)) for r in data.get("route", []))
    values: dict[str, Any] = {k: policy[k] for k in numeric if k in policy}
    if "max_attempts" in values and int(values["max_attempts"]) < 1:
        raise AlertingConfigError(f"{file}: max_attempts must be >= 1")
    return AlertingConfig(
        alertmanager_url=(os.environ.get(AM_URL_ENV) or am.get("url", "")).rstrip("/"),
        pagerduty_url=os.environ.get(PD_URL_ENV) or pd.get("url", PD_DEFAULT_URL),
        pagerduty_key_env=pd.get("routing_key_env", PD_KEY_ENV),
        slack_url_env=slack.get("webhook_url_env", SLACK_URL_ENV),
        routes=routes,
        source_file=str(file) if file.is_file() else "",
        **values,
    )
