"""The default DVC remote, read from the project's `.dvc/config` (the one place it is configured).

The genline checkout is a DVC project: its committed `.dvc/config` names the default remote
(`core.remote`) and its URL, and `.dvc/config.local` (git-ignored, written by
`dvc remote modify --local`) overrides it per machine. A relative local URL is resolved against
`.dvc/`, as DVC does. The data registry under the state directory pushes to that remote when the
state directory lives in the project (the default `./.genline`); elsewhere genline falls back to
`<state>/dvc_remote`. Credentials are never read from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

FALLBACK_REMOTE_NAME = "genline"
FALLBACK_REMOTE_DIR = "dvc_remote"  # under the state directory


@dataclass(frozen=True)
class ProjectRemote:
    """A project's default DVC remote.

    Attributes:
        name: the remote's name (`core.remote`).
        url: a local directory (absolute) or a URL such as `s3://bucket/prefix`.
        endpoint_url: `endpointurl` of an S3-compatible remote, else "".
    """

    name: str
    url: str
    endpoint_url: str = ""


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    from configobj import ConfigObj

    return ConfigObj(str(path), encoding="utf-8", interpolation=False).dict()


def project_remote(project_dir: str | Path) -> ProjectRemote | None:
    """The default remote configured in `<project_dir>/.dvc/config` (+ `config.local`).

    Args:
        project_dir: a DVC project's root (the directory holding `.dvc/`).

    Returns:
        The remote, or None when the project has no `.dvc/config` or names no default remote.

    Raises:
        ValueError: `core.remote` names a remote that has no `url`.
    """
    dvc_dir = Path(project_dir) / ".dvc"
    merged: dict[str, dict] = {}
    for conf in (_read(dvc_dir / "config"), _read(dvc_dir / "config.local")):
        for section, values in conf.items():
            if isinstance(values, dict):
                merged.setdefault(section, {}).update(values)
    name = merged.get("core", {}).get("remote", "")
    if not name:
        return None
    section = merged.get(f'remote "{name}"', {})
    url = section.get("url", "")
    if not url:
        raise ValueError(f"{dvc_dir / 'config'}: default remote {name!r} has no url")
    if "://" not in url and not os.path.isabs(url):
        url = os.path.normpath(dvc_dir / url)  # DVC resolves relative paths against .dvc/
    return ProjectRemote(name, url, section.get("endpointurl", ""))


def default_remote(state_root: Path) -> ProjectRemote:
    """The registry's default remote for the state directory `state_root`.

    The project's `.dvc/config` when `state_root` lives directly in a DVC project (the default
    `./.genline` of a checkout), else `<state_root>/dvc_remote` named "genline".
    """
    found = project_remote(Path(state_root).resolve().parent)
    if found is not None:
        return found
    return ProjectRemote(FALLBACK_REMOTE_NAME, str(state_root / FALLBACK_REMOTE_DIR))
