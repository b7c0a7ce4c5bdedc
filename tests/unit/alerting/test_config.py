"""Routing configuration: the file under $GENLINE_HOME, the environment, and secrets."""

from __future__ import annotations

import pytest

from genline.alerting import AlertingConfigError, load_config


def test_defaults_send_everything_to_the_file_sink_only(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    cfg = load_config()
    assert cfg.enabled() == ("file",)
    assert cfg.receivers_for("pipeline.failed", "critical") == ("file",)


def test_environment_enables_receivers_with_default_routes(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    monkeypatch.setenv("GENLINE_ALERTMANAGER_URL", "http://127.0.0.1:9093/")
    monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", "k" * 32)
    monkeypatch.setenv("GENLINE_SLACK_WEBHOOK_URL", "http://127.0.0.1:1/hook")
    cfg = load_config()
    assert cfg.alertmanager_url == "http://127.0.0.1:9093"
    assert cfg.receivers_for("x.y", "critical") == ("file", "alertmanager", "pagerduty", "slack")
    assert cfg.receivers_for("x.y", "warning") == ("file", "alertmanager", "slack")
    assert cfg.receivers_for("x.y", "info") == ("file", "alertmanager")


def test_the_file_under_genline_home_routes_kinds_and_severities(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", "k" * 32)
    (tmp_path / "alerting.toml").write_text(
        'hold_down_s = 60\nmax_attempts = 3\n[alertmanager]\nurl = "http://am:9093"\n'
        '[[route]]\nreceiver = "pagerduty"\nkinds = ["pipeline.*"]\nmin_severity = "critical"\n'
        '[[route]]\nreceiver = "alertmanager"\nkinds = ["drift.*"]\n'
    )
    cfg = load_config()
    assert cfg.hold_down_s == 60 and cfg.max_attempts == 3
    assert cfg.receivers_for("pipeline.failed", "critical") == ("file", "pagerduty")
    assert cfg.receivers_for("pipeline.failed", "warning") == ("file",)
    assert cfg.receivers_for("drift.serving", "info") == ("file", "alertmanager")


@pytest.mark.parametrize(
    "text, message",
    [
        ('[pagerduty]\nrouting_key = "secret"\n', "must not be written in the file"),
        ('[slack]\nwebhook_url = "https://hooks"\n', "must not be written in the file"),
        ('[[route]]\nreceiver = "email"\n', "route receiver 'email'"),
        ('[[route]]\nreceiver = "slack"\nmin_severity = "high"\n', "min_severity 'high'"),
        ("hold_down = 3\n", "unknown setting"),
        ("max_attempts = 0\n", "max_attempts must be >= 1"),
        ("[[route]\n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_a_message(tmp_path, text, message):
    path = tmp_path / "alerting.toml"
    path.write_text(text)
    with pytest.raises(AlertingConfigError, match=message):
        load_config(path)
