"""Alerting benchmarks, measured in one run; writes docs/benchmarks/alerting.md and the
"## Alerting" section of docs/benchmarks.md.

1. Alerts per second through the outbox to a local receiver (a loopback HTTP server answering
   202 like PagerDuty's Events API): `fire` with delivery (outbox write, file sink, HTTP), and
   outbox-only writes followed by one `flush`.
2. Time from fire to receipt at a real Alertmanager (Debian's binary on a free loopback port):
   `fire` returns once Alertmanager answered the POST; receipt is when the alert is readable
   from its /api/v2/alerts.

    .venv/bin/python benchmarks/alerting.py [--alerts 300] [--am-alerts 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "alerting.md"
DOC = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(ROOT / "tests" / "integration" / "alerting"))
PD_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


class _Accepting(BaseHTTPRequestHandler):
    count = 0

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).count += 1
        body = b'{"status": "success", "message": "Event processed"}'
        self.send_response(202)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _alert(i: int, kind: str = "bench.alert"):
    from genline.alerting import Alert

    return Alert(kind, "critical", f"benchmark alert {i}", source="bench", subject=str(i))


def bench_outbox(n: int) -> dict:
    from genline.alerting import AlertingConfig, Router

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v2/enqueue"
    os.environ["GENLINE_PAGERDUTY_ROUTING_KEY"] = PD_KEY
    cfg = AlertingConfig(pagerduty_url=url, hold_down_s=0)
    out = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            router = Router(Path(tmp) / "a", cfg)
            t0 = time.perf_counter()
            for i in range(n):
                router.fire(_alert(i))
            out["fire_deliver_s"] = time.perf_counter() - t0
            router = Router(Path(tmp) / "b", cfg)
            t0 = time.perf_counter()
            for i in range(n):
                router.fire(_alert(i), deliver=False)
            out["outbox_write_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = router.flush()
            out["flush_s"] = time.perf_counter() - t0
            out["flushed"] = report.delivered
            out["pending_after"] = report.pending
    finally:
        server.shutdown()
        del os.environ["GENLINE_PAGERDUTY_ROUTING_KEY"]
    out["received"] = _Accepting.count
    return out


def bench_alertmanager(n: int) -> dict | None:
    import am_fixture

    from genline.alerting import AlertingConfig, Router

    if am_fixture.binary() is None:
        print(am_fixture.INSTALL_HINT)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = am_fixture.start(Path(tmp) / "am")
        try:
            router = Router(Path(tmp) / "alerts", AlertingConfig(alertmanager_url=url))
            post, receipt = [], []
            for i in range(n):
                alert = _alert(i, "bench.am")
                t0 = time.perf_counter()
                router.fire(alert)
                t1 = time.perf_counter()
                query = urllib.request.quote(f'dedup_key="{alert.dedup_key}"')
                for _ in range(2000):  # bounded poll
                    with urllib.request.urlopen(f"{url}/api/v2/alerts?filter={query}") as r:
                        if json.loads(r.read()):
                            break
                    time.sleep(0.001)
                t2 = time.perf_counter()
                post.append(t1 - t0)
                receipt.append(t2 - t0)
        finally:
            am_fixture.stop(proc)
    return {
        "fire_returns_ms_median": statistics.median(post) * 1e3,
        "receipt_ms_median": statistics.median(receipt) * 1e3,
        "receipt_ms_p90": sorted(receipt)[int(0.9 * (n - 1))] * 1e3,
        "receipt_ms_max": max(receipt) * 1e3,
    }


def render(n: int, ob: dict, am: dict | None, am_n: int) -> str:
    rate_deliver = n / ob["fire_deliver_s"]
    rate_write = n / ob["outbox_write_s"]
    rate_flush = n / ob["flush_s"]
    lines = [
        "## Alerting: the outbox and a real Alertmanager",
        "",
        f"One run, {platform.machine()}, Python {platform.python_version()}; {n} alerts, each a "
        "new incident (distinct dedup keys), routed to the file sink and a loopback HTTP "
        "receiver answering 202 as PagerDuty's Events API does. Every event is fsynced to the "
        "outbox and the snapshot before delivery, and every delivery rewrites the snapshot "
        "(all incidents kept, up to 1,000 resolved), so fsyncs and the snapshot's size set the "
        "cost: a flush of many pending events is slower per event than delivering inline.",
        "",
        "| path | alerts/s | per alert |",
        "|---|---|---|",
        f"| `fire` with delivery (outbox, file sink, HTTP) | {rate_deliver:.0f} | "
        f"{1e3 / rate_deliver:.1f} ms |",
        f"| outbox write only (`fire(deliver=False)`) | {rate_write:.0f} | "
        f"{1e3 / rate_write:.1f} ms |",
        f"| `flush` of the {n} written | {rate_flush:.0f} | {1e3 / rate_flush:.1f} ms |",
        "",
        f"Ratio: delivering inline costs {rate_write / rate_deliver:.1f}x an outbox-only write. "
        f"The receiver got {ob['received']} requests for {2 * n} alerts (each exactly once); "
        f"pending after flush: {ob['pending_after']}.",
        "",
    ]
    if am is None:
        lines += ["Alertmanager not installed: fire-to-receipt not measured.", ""]
    else:
        lines += [
            f"Fire to receipt at a real Alertmanager (0.25, loopback), {am_n} alerts:",
            "",
            "| measure | ms |",
            "|---|---|",
            f"| `fire` returns (outbox, file sink, POST /api/v2/alerts answered) | "
            f"{am['fire_returns_ms_median']:.1f} (median) |",
            f"| readable from GET /api/v2/alerts, from fire | {am['receipt_ms_median']:.1f} "
            f"(median), {am['receipt_ms_p90']:.1f} (p90), {am['receipt_ms_max']:.1f} (max) |",
            "",
        ]
    return "\n".join(lines)


def _replace_section(text: str, section: str) -> str:
    head = "## Alerting"
    start = text.find(head)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(head))
    return text[:start] + section + ("" if end < 0 else text[end + 1 :])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=300)
    ap.add_argument("--am-alerts", type=int, default=30)
    args = ap.parse_args()
    ob = bench_outbox(args.alerts)
    am = bench_alertmanager(args.am_alerts)
    section = render(args.alerts, ob, am, args.am_alerts)
    print(section)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(section)
    DOC.write_text(_replace_section(DOC.read_text(), section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
