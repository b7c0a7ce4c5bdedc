"""The committed lock satisfies pyproject.toml, is complete and hashed, and is what is installed."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*(?:\\)?$")


def read_lock(path: Path) -> tuple[dict[str, Version], dict[str, int]]:
    """Returns ({canonical name: pinned version}, {canonical name: number of hashes})."""
    pins: dict[str, Version] = {}
    hashes: dict[str, int] = {}
    current = None
    for line in path.read_text().splitlines():
        if m := PIN.match(line):
            current = canonicalize_name(m.group(1))
            assert current not in pins, f"{current} pinned twice in {path.name}"
            pins[current] = Version(m.group(2))
            hashes[current] = 0
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            hashes[current] += 1
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    return pins, hashes


def direct_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]] + [
        Requirement(r) for r in project["optional-dependencies"]["dev"]
    ]


@pytest.fixture(scope="module")
def lock() -> dict[str, Version]:
    return read_lock(ROOT / "requirements.lock")[0]


def applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))


def test_every_direct_dependency_is_pinned_within_its_range(lock):
    problems = []
    for req in direct_requirements():
        name = canonicalize_name(req.name)
        if name not in lock:
            problems.append(f"{req} is not in requirements.lock")
        elif not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"requirements.lock pins {name}=={lock[name]}, pyproject says {req}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_lock_is_closed_under_the_installed_dependency_metadata(lock):
    """Walks the dependency graph from pyproject, reading each locked distribution's metadata
    where the installed version is the locked one: every requirement met by a pin."""
    todo = [(r, set(r.extras)) for r in direct_requirements()]
    seen: set[tuple[str, frozenset[str]]] = set()
    problems = []
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name not in lock:
            problems.append(f"{req} (needed) is not in requirements.lock")
            continue
        if not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{name}=={lock[name]} does not satisfy {req}")
        key = (name, frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != lock[name]:
            continue  # covered by test_installed_environment_is_the_lock
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if applies(sub, extras):
                todo.append((sub, set(sub.extras)))
    assert not problems, "\n".join(problems)
    assert len(seen) > 100  # the walk really followed the metadata


def test_every_pin_is_hashed():
    for name in ("requirements.lock", "requirements-uv.lock"):
        pins, hashes = read_lock(ROOT / name)
        assert pins, name
        unhashed = sorted(p for p, n in hashes.items() if n == 0)
        assert not unhashed, f"{name}: no --hash for {unhashed}"


def test_torch_is_the_local_cpu_build(lock):
    assert lock["torch"] == Version("2.13.0+cpu")


def test_uv_lock_pins_the_makefile_version():
    pins, _ = read_lock(ROOT / "requirements-uv.lock")
    m = re.search(r"^UV_VERSION\s*:=\s*(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, "Makefile defines UV_VERSION"
    assert pins == {"uv": Version(m.group(1))}


def test_installed_environment_is_the_lock(lock):
    """The tests run against exactly the locked set (`make setup` installs it)."""
    wrong = []
    for name, version in sorted(lock.items()):
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}=={version} not installed")
            continue
        if installed != version:
            wrong.append(f"{name}: installed {installed}, locked {version}")
    assert not wrong, "run `make setup` (or `make lock` if pyproject changed):\n" + "\n".join(wrong)
