"""The router: incidents (dedup, update, resolve, hold-down), the outbox, retries, dead letters."""

from __future__ import annotations

import json

import pytest
from receiver_fixture import Receiver

from genline.alerting import Alert, AlertingConfig, Router
from genline.alerting.outbox import Outbox
from genline.alerts import read_alerts

PD_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 characters, like a real integration key


def alert(subject: str = "run-1", severity: str = "critical", **kw) -> Alert:
    return Alert(
        kind=kw.pop("kind", "pipeline.failed"),
        severity=severity,
        summary=kw.pop("summary", f"genline-training failed ({subject})"),
        source="test",
        model="genline_generator",
        version="7",
        subject=subject,
        **kw,
    )


def config(**kw) -> AlertingConfig:
    base = {"backoff_s": 0.001, "backoff_max_s": 0.002, "send_budget_s": 1.0, "hold_down_s": 0}
    return AlertingConfig(**{**base, **kw})


def triggers(directory) -> list[dict]:
    return [r for r in read_alerts(directory) if r["action"] == "trigger"]


def test_firing_an_open_incident_updates_it(tmp_path, pinned_clock):
    router = Router(tmp_path, config())
    first = router.fire(alert())
    pinned_clock(60)
    second = router.fire(alert(numbers={"fd_ratio": 2.0}))
    assert second["incident_id"] == first["incident_id"] and second["count"] == 2
    assert [i["key"] for i in router.incidents(open_only=True)] == [alert().dedup_key]
    assert len(triggers(tmp_path)) == 1  # the file sink got one alert, not two
    assert router.incidents()[0]["alert"]["numbers"] == {"fd_ratio": 2.0}  # updated
    other = router.fire(alert("run-2"))
    assert other["incident_id"] != first["incident_id"]
    assert alert().dedup_key == "pipeline.failed/genline_generator/7/run-1"


def test_resolve_closes_and_a_later_fire_opens_a_new_incident(tmp_path, pinned_clock):
    router = Router(tmp_path, config())
    first = router.fire(alert())
    closed = router.resolve(first["key"])
    assert closed["status"] == "resolved" and router.incidents(open_only=True) == []
    assert [r["action"] for r in read_alerts(tmp_path)] == ["trigger", "resolve"]
    again = router.fire(alert())
    assert again["incident_id"] != first["incident_id"] and again["status"] == "open"
    with pytest.raises(KeyError, match="no incident"):
        router.resolve("no/such/key/-")


def test_a_flapping_signal_inside_the_hold_down_is_one_incident(tmp_path, pinned_clock):
    router = Router(tmp_path, config(hold_down_s=300))
    key = router.fire(alert())["key"]
    for t in (10, 30, 50, 70):  # clears, fires again 10 s later, four times
        pinned_clock(t)
        router.resolve(key)
        pinned_clock(t + 10)
        router.fire(alert())
    pinned_clock(100)
    inc = router.resolve(key)
    assert inc["status"] == "open" and inc["resolve_requested_at"]  # held, not sent
    pinned_clock(399)
    router.flush()
    assert router.incidents(open_only=True)[0]["flaps"] == 4
    pinned_clock(400)  # hold-down over: the resolve goes out, dated when the signal cleared
    router.flush()
    (inc,) = router.incidents()
    assert inc["status"] == "resolved" and inc["resolved_at"].startswith("2026-11-15T08:01:40")
    assert [r["action"] for r in read_alerts(tmp_path)] == ["trigger", "resolve"]


def test_pagerduty_gets_the_documented_event_and_the_key_is_stored_nowhere(
    tmp_path, pinned_clock, monkeypatch
):
    with Receiver("pagerduty") as pd:
        monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", PD_KEY)
        router = Router(tmp_path, config(pagerduty_url=pd.url))
        long = "x" * 2000
        a = alert(
            summary=long,
            numbers={"fd_ratio": 2.5},
            thresholds={"fd_ratio": 1.5},
            links={"report": "https://reports.example/run-1.html"},
        )
        router.fire(a)
        router.fire(a)  # an update: PagerDuty dedups by dedup_key, so it is told again
        router.resolve(a.dedup_key)
    trigger, update, resolve = pd.accepted
    assert trigger["event_action"] == update["event_action"] == "trigger"
    assert trigger["dedup_key"] == update["dedup_key"] == resolve["dedup_key"] == a.dedup_key
    p = trigger["payload"]
    assert len(p["summary"]) <= 1024 and p["severity"] == "critical" and p["source"] == "test"
    assert p["custom_details"]["numbers"] == {"fd_ratio": 2.5}
    assert p["custom_details"]["thresholds"] == {"fd_ratio": 1.5}
    assert {"href": "https://reports.example/run-1.html", "text": "report"} in trigger["links"]
    assert resolve == {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": a.dedup_key}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PD_KEY not in path.read_text(), f"routing key written to {path}"


def test_warning_maps_to_pagerduty_warning_and_routes_decide(tmp_path, monkeypatch):
    from genline.alerting import Route

    with Receiver("pagerduty") as pd:
        monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", PD_KEY)
        routes = (Route("pagerduty", ("drift.*",), "warning"),)
        router = Router(tmp_path, config(pagerduty_url=pd.url, routes=routes))
        router.fire(alert("a", severity="warning", kind="drift.serving"))
        router.fire(alert("b", severity="info", kind="drift.serving"))  # below min_severity
        router.fire(alert("c", severity="critical", kind="publish.failed"))  # kind not routed
    assert [b["payload"]["severity"] for b in pd.accepted] == ["warning"]
    assert len(triggers(tmp_path)) == 3  # the file sink always gets everything


def test_a_400_is_dead_lettered_at_once_with_the_reason(tmp_path, monkeypatch):
    with Receiver("pagerduty") as pd:
        monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", "too-short")  # PagerDuty says 400
        router = Router(tmp_path, config(pagerduty_url=pd.url))
        router.fire(alert())
    assert len(pd.requests) == 1  # not retried
    (dead,) = Outbox(tmp_path).dead_letters()
    assert dead["receiver"] == "pagerduty" and dead["error"].startswith("400")
    assert "routing_key must be a 32-character string" in dead["error"]
    assert "too-short" not in json.dumps(dead)
    notice = [r for r in read_alerts(tmp_path) if r["kind"] == "alerting.dead_letter"]
    assert len(notice) == 1 and "pagerduty" in notice[0]["summary"]
    assert Outbox(tmp_path).pending() == []


def test_429_and_5xx_are_retried_with_backoff_and_delivered_once(tmp_path, monkeypatch):
    with Receiver("pagerduty") as pd:
        pd.script = [429, 500, 502, 503]
        monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", PD_KEY)
        router = Router(tmp_path, config(pagerduty_url=pd.url, max_attempts=8))
        router.fire(alert())
    assert len(pd.requests) == 5 and len(pd.accepted) == 1
    assert Outbox(tmp_path).dead_letters() == [] and Outbox(tmp_path).pending() == []


def test_a_receiver_down_five_times_then_back_gets_everything_once_in_order(tmp_path, monkeypatch):
    with Receiver("pagerduty") as pd:
        pd.script = [503] * 5
        monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", PD_KEY)
        # each fire tries once and leaves the rest to flush (a kfp step must not hang)
        router = Router(tmp_path, config(pagerduty_url=pd.url, send_budget_s=0, max_attempts=8))
        for name in ("a", "b", "c"):
            router.fire(alert(name))
        assert len(pd.accepted) == 0 and len(Outbox(tmp_path).pending()) == 3
        report = router.flush()
    assert len(pd.requests) == 5 + 3
    assert [b["dedup_key"].split("/")[-1] for b in pd.accepted] == ["a", "b", "c"]
    assert report.delivered == {"pagerduty": 3} and report.pending == 0
    assert Outbox(tmp_path).pending() == [] and Outbox(tmp_path).dead_letters() == []
    assert [r["subject"] for r in triggers(tmp_path)] == ["a", "b", "c"]  # the file: once each


def test_after_max_attempts_an_event_is_dead_lettered_and_the_file_sink_says_so(
    tmp_path, monkeypatch
):
    with Receiver("pagerduty") as pd:
        pd.script = [503] * 100
        monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", PD_KEY)
        router = Router(tmp_path, config(pagerduty_url=pd.url, max_attempts=3))
        router.fire(alert("a"))
        router.fire(alert("b"))
    assert len(pd.requests) == 6  # three tries each, in order
    dead = Outbox(tmp_path).dead_letters()
    assert [d["event"]["alert"]["subject"] for d in dead] == ["a", "b"]
    assert all(d["attempts"] == 3 and d["error"].startswith("503") for d in dead)
    notices = [r for r in read_alerts(tmp_path) if r["kind"] == "alerting.dead_letter"]
    assert len(notices) == 2 and Outbox(tmp_path).pending() == []


def test_slack_gets_text_and_blocks_with_numbers_and_links_but_no_updates(tmp_path, monkeypatch):
    with Receiver("slack") as slack:
        monkeypatch.setenv("GENLINE_SLACK_WEBHOOK_URL", slack.url)
        router = Router(tmp_path, config())
        a = alert(
            severity="warning",
            numbers={"psi": 0.31},
            thresholds={"psi": 0.2},
            links={"report": "https://reports.example/drift.html"},
        )
        router.fire(a)
        router.fire(a)  # Slack does not dedup: an update would be a second message
        router.resolve(a.dedup_key)
    first, resolved = slack.accepted
    assert first["text"].startswith("[WARNING] ") and resolved["text"].startswith("[RESOLVED] ")
    blocks = json.dumps(first["blocks"])
    assert (
        "0.31 (threshold 0.2)" in blocks and "<https://reports.example/drift.html|report>" in blocks
    )
    assert "docs/alerting.md#pipeline-failed" in blocks  # the runbook link
    assert slack.url not in json.dumps(read_alerts(tmp_path))


def test_an_unreachable_receiver_keeps_the_event_for_later(tmp_path, monkeypatch):
    from genline.netutil import free_port

    monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", PD_KEY)
    url = f"http://127.0.0.1:{free_port()}/v2/enqueue"  # nothing listens there
    router = Router(tmp_path, config(pagerduty_url=url, send_budget_s=0, max_attempts=5))
    router.fire(alert())
    (event,) = Outbox(tmp_path).pending()
    assert event.receivers == ("file", "pagerduty")
    with Receiver("pagerduty") as pd:
        report = Router(tmp_path, config(pagerduty_url=pd.url)).flush()
    assert len(pd.accepted) == 1 and report.pending == 0
