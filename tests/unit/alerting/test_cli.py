"""`genline alerts list|resolve|test|flush` against a real router and a local receiver."""

from __future__ import annotations

from click.testing import CliRunner
from receiver_fixture import Receiver

from genline.alerts import read_alerts, send_alert
from genline.cli import cli

PD_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


def test_list_and_resolve(tmp_path, pinned_clock):
    rec = send_alert(
        "serving.publish", "publish of v3 failed", details={"version": 3}, sink_dir=tmp_path
    )
    runner = CliRunner()
    out = runner.invoke(cli, ["alerts", "list", "--open", "--dir", str(tmp_path)])
    assert out.exit_code == 0 and rec["dedup_key"] in out.output and "publish of v3" in out.output
    out = runner.invoke(cli, ["alerts", "resolve", rec["dedup_key"], "--dir", str(tmp_path)])
    assert out.exit_code == 0 and "resolved" in out.output
    out = runner.invoke(cli, ["alerts", "list", "--open", "--dir", str(tmp_path)])
    assert "no open incidents" in out.output
    assert [r["action"] for r in read_alerts(tmp_path)] == ["trigger", "resolve"]
    out = runner.invoke(cli, ["alerts", "resolve", "nope", "--dir", str(tmp_path)])
    assert out.exit_code != 0 and "no incident" in out.output


def test_test_command_reports_each_receivers_answer(tmp_path, pinned_clock, monkeypatch):
    with Receiver("pagerduty") as pd:
        monkeypatch.setenv("GENLINE_PAGERDUTY_ROUTING_KEY", PD_KEY)
        monkeypatch.setenv("GENLINE_PAGERDUTY_URL", pd.url)
        out = CliRunner().invoke(cli, ["alerts", "test", "--dir", str(tmp_path)])
        assert out.exit_code == 0, out.output
        assert "pagerduty     ok" in out.output and "202" in out.output
        assert [b["event_action"] for b in pd.accepted] == ["trigger", "resolve"]
        pd.script = [503] * 50  # down: the command says so and exits 1
        monkeypatch.setenv("GENLINE_ALERTING_CONFIG", str(tmp_path / "alerting.toml"))
        (tmp_path / "alerting.toml").write_text("backoff_s = 0.01\nsend_budget_s = 0.1\n")
        out = CliRunner().invoke(cli, ["alerts", "test", "--dir", str(tmp_path)])
        assert out.exit_code == 1 and "pagerduty     FAILED 503" in out.output
    assert PD_KEY not in out.output
