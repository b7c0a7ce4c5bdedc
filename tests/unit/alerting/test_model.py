"""The alert model: dedup keys and the runbook sections alert links point at."""

from __future__ import annotations

from pathlib import Path

import pytest

from genline.alerting import Alert, AlertError, dedup_key
from genline.alerting.model import KINDS, runbook_anchor

DOC = Path(__file__).resolve().parents[3] / "docs" / "alerting.md"


def test_dedup_key_is_readable_bounded_and_distinct():
    assert (
        dedup_key("data.quarantine", "", "", "2026-11-14:ab12")
        == "data.quarantine/-/-/2026-11-14:ab12"
    )
    a, b = dedup_key("k", "m", "1", "x" * 400), dedup_key("k", "m", "1", "x" * 399 + "y")
    assert len(a) <= 255 and len(b) <= 255 and a != b


def test_bad_alerts_are_refused():
    with pytest.raises(AlertError, match="severity"):
        Alert("pipeline.failed", "fatal", "x")
    with pytest.raises(AlertError, match="summary"):
        Alert("pipeline.failed", "critical", "  ")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_runbook_section(kind):
    heading = "### " + runbook_anchor(kind).lstrip("#")
    assert heading in DOC.read_text(), f"{DOC} lacks {heading!r}"
