"""On-call alerting: one router for all of genline (see docs/alerting.md).

    from genline.alerting import Alert, Router
    Router().fire(Alert("drift.serving", "warning", "psi 0.31 > 0.2", model="genline_generator"))

Modules: `model` (Alert, Event, dedup keys), `config` (routes and receivers from
`<state>/alerting.toml` and the environment), `outbox` (the durable queue and incident
snapshot), `receivers` (file sink, Alertmanager, PagerDuty Events v2, Slack), `router` (fire,
update, resolve with hold-down, delivery with retries and dead letters), `runs` (the identity of
a failing run, shared by the kfp exit handler and the Dagster failure sensor).
"""

from genline.alerting.config import AlertingConfig, AlertingConfigError, Route, load_config
from genline.alerting.model import SEVERITIES, Alert, AlertError, Event, dedup_key
from genline.alerting.router import FlushReport, Router

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertError",
    "AlertingConfig",
    "AlertingConfigError",
    "Event",
    "FlushReport",
    "Route",
    "Router",
    "dedup_key",
    "load_config",
]
