"""The serving registry: which version serves, and the lineage of every version ever published.

One JSON file (`<state>/serving/registry.json`, atomic rewrites under an exclusive lock), keyed by
(absolute repository path, model name), so a test repository never mixes with `triton_repo/`.

Entry layout:
    {"serving": 3, "previous": [1, 2],
     "versions": {"3": {"version": 3, "state": "serving", "serving_at": ..., "lineage": {...},
                        "meta": {...}}},
     "events": [{"time": ..., "event": "published", "version": 3, ...}, ...]}

Each version also records the serving metadata it was published with (`meta`: num_classes,
latent_dim, image_shape, classes), so publish and rollback never read it back from the version
directories.

Version states: "staged" (number assigned, files staged; recorded before the version directory
is renamed into place, so a crash at any later point leaves a record), "serving", "standby"
(an older version that served before), "quarantined", "rolled_back". A "staged" version with
no outcome belongs to a publish that died; the next publish reconciles it under the lock.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genline import clock
from genline.fsutil import atomic_write_json, read_json


def default_path() -> Path:
    from genline.paths import state_dir

    return state_dir() / "serving" / "registry.json"


def _key(repository: str | Path, model: str) -> str:
    return f"{Path(repository).resolve()}|{model}"


class Registry:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_path()

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                data = read_json(self.path) if self.path.exists() else {"models": {}}
                yield data
                atomic_write_json(self.path, data)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read(self) -> dict[str, Any]:
        return read_json(self.path) if self.path.exists() else {"models": {}}

    def entry(self, repository: str | Path, model: str) -> dict[str, Any]:
        return self.read()["models"].get(
            _key(repository, model), {"serving": None, "versions": {}, "events": []}
        )

    def serving(self, repository: str | Path, model: str) -> int | None:
        return self.entry(repository, model).get("serving")

    def known_versions(self, repository: str | Path, model: str) -> set[int]:
        return {int(v) for v in self.entry(repository, model).get("versions", {})}

    def in_state(self, repository: str | Path, model: str, *states: str) -> list[int]:
        """Versions whose recorded state is one of `states`, ascending."""
        versions = self.entry(repository, model).get("versions", {})
        return sorted(int(v) for v, info in versions.items() if info.get("state") in states)

    def version_info(self, repository: str | Path, model: str, version: int) -> dict[str, Any]:
        """The recorded state, lineage and reason of one version ({} if never recorded)."""
        return dict(self.entry(repository, model).get("versions", {}).get(str(version), {}))

    def serving_meta(
        self, repository: str | Path, model: str, version: int
    ) -> dict[str, Any] | None:
        """What `version` was published with: num_classes, latent_dim, image_shape, classes.

        Returns:
            The metadata recorded when the version was staged, or None when none was recorded.
        """
        meta = self.version_info(repository, model, version).get("meta")
        return dict(meta) if meta is not None else None

    def previous_version(self, repository: str | Path, model: str, version: int) -> int | None:
        """The newest standby version older than `version` (what a rollback serves), or None."""
        older = [v for v in self.in_state(repository, model, "standby") if v < version]
        return older[-1] if older else None

    def champion_dir(self, repository: str | Path, model: str, champion_version: str) -> str | None:
        """The model directory a published version came from, for the champion/challenger gate.

        Args:
            repository: the Triton model repository the version was published into.
            model: the served model's name.
            champion_version: "" for no champion, "serving" for whatever serves now (none when
                nothing has been published yet), or a version number.

        Returns:
            The directory the version was published from, or None when there is no champion.

        Raises:
            ValueError: an unknown version, or one whose model directory no longer exists.
        """
        if not champion_version:
            return None
        entry = self.entry(repository, model)
        if champion_version == "serving":
            serving = entry.get("serving")
            if serving is None:
                return None
            version = str(serving)
        elif champion_version.isdigit():
            version = str(int(champion_version))
        else:
            raise ValueError(
                "champion_version must be '', 'serving' or a version number, got "
                f"{champion_version!r}"
            )
        record = entry.get("versions", {}).get(version)
        if record is None:
            known = sorted(entry.get("versions", {}), key=int)
            raise ValueError(
                f"version {version} of {model} was never published to "
                f"{repository} (published: {known or 'none'})"
            )
        model_dir = record.get("lineage", {}).get("model_dir")
        if not model_dir or not Path(model_dir).is_dir():
            raise ValueError(
                f"version {version}: its model directory {model_dir!r} is gone, so it "
                "cannot be re-scored as the champion"
            )
        return model_dir

    def record(
        self,
        repository: str | Path,
        model: str,
        event: str,
        version: int,
        *,
        serving: int | None = None,
        state: str | None = None,
        lineage: dict[str, Any] | None = None,
        reason: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> dict:
        """Append an event; optionally set the serving version and a version's state, lineage,
        reason and serving metadata (`meta`: num_classes, latent_dim, image_shape, classes)."""
        now = clock.now().isoformat()
        with self._locked() as data:
            entry = data["models"].setdefault(
                _key(repository, model),
                {
                    "repository": str(Path(repository).resolve()),
                    "model": model,
                    "serving": None,
                    "versions": {},
                    "events": [],
                },
            )
            v = entry["versions"].setdefault(str(version), {"version": version})
            if state is not None:
                v["state"] = state
                v[f"{state}_at"] = now
            if lineage is not None:
                v["lineage"] = lineage
            if reason is not None:
                v["reason"] = reason
            if meta is not None:
                v["meta"] = meta
            if serving is not None:
                old = entry.get("serving")
                if old is not None and old != serving and str(old) in entry["versions"]:
                    if entry["versions"][str(old)].get("state") == "serving":
                        entry["versions"][str(old)]["state"] = "standby"
                entry["serving"] = serving
            entry["events"].append(
                {
                    "time": now,
                    "event": event,
                    "version": version,
                    **({"reason": reason} if reason else {}),
                }
            )
            return dict(entry)
