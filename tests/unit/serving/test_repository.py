from __future__ import annotations

import pytest

from genline.serving import repository as r


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "a\\b", "", "x/..", "/abs", ".hidden"])
def test_bad_model_names_refused(name):
    with pytest.raises(r.RepositoryError):
        r.check_model_name(name)


@pytest.mark.parametrize("v", ["../1", "1/..", "0", "-3", "1.0", "", "01a", True])
def test_bad_versions_refused(v):
    with pytest.raises(r.RepositoryError):
        r.check_version(v)


def test_versions_never_reused(tmp_path):
    model = "m"
    (tmp_path / model / "1").mkdir(parents=True)
    (tmp_path / model / "2").mkdir()
    assert r.versions(tmp_path, model) == [1, 2]
    assert r.next_version(tmp_path, model) == 3
    r.quarantine(tmp_path, model, 2, "broken")
    assert r.versions(tmp_path, model) == [1] and r.quarantined(tmp_path, model) == [2]
    assert r.next_version(tmp_path, model) == 3
    assert r.next_version(tmp_path, model, seen={7}) == 8
    r.restore(tmp_path, model, 2)
    assert r.versions(tmp_path, model) == [1, 2]
    r.quarantine(tmp_path, model, 2, "again")
    r.quarantine(tmp_path, model, 2, "a staged copy", source=tmp_path / "nothing")
    assert r.quarantined(tmp_path, model) == [2]


def test_check_repository_errors(tmp_path):
    with pytest.raises(r.RepositoryError, match="does not exist"):
        r.check_repository(tmp_path / "nope", "m")
    with pytest.raises(r.RepositoryError, match="config.pbtxt"):
        r.check_repository(tmp_path, "m")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text('name: "other"\n')
    with pytest.raises(r.RepositoryError, match="does not match"):
        r.check_repository(tmp_path, "m")
