"""The Dockerfiles' build contexts are complete and agree with the one image constant.

No container engine runs here, so the build is checked statically: every COPY source exists and
survives .dockerignore (evaluated with Docker's rules: patterns in order, last match wins, `!`
re-includes), everything `pip install .` needs is copied before it runs, and the image labels and
manifests carry the constant's tag.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

from components.image import PROJECT_IMAGE, PROJECT_IMAGE_GPU, image_for

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = {"Dockerfile": PROJECT_IMAGE, "Dockerfile.gpu": PROJECT_IMAGE_GPU}


def _pattern_to_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore pattern (Go filepath.Match plus `**`) as a regex on a path."""
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch))
        i += 1
    # a pattern matching a directory also excludes everything under it
    return re.compile(f"^{out}(?:/.*)?$")


def dockerignore_excludes(path: str) -> bool:
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if _pattern_to_regex(line.lstrip("!")).match(path):
            excluded = not negate
    return excluded


def copy_sources(dockerfile: str) -> list[tuple[str, int]]:
    """(source, line number) of every COPY from the build context (not --from a stage)."""
    sources = []
    for n, line in enumerate((ROOT / dockerfile).read_text().splitlines(), 1):
        parts = line.split()
        if parts[:1] != ["COPY"] or any(p.startswith("--from") for p in parts):
            continue
        args = [p for p in parts[1:] if not p.startswith("--")]
        sources += [(src, n) for src in args[:-1]]
    return sources


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_copy_source_exists_and_is_in_the_context(dockerfile):
    sources = copy_sources(dockerfile)
    assert sources, "no COPY found"
    for src, line in sources:
        path = ROOT / src
        assert path.exists(), f"{dockerfile}:{line}: COPY {src} does not exist"
        rel = src.rstrip("/")
        assert not dockerignore_excludes(rel), f"{dockerfile}:{line}: {src} is in .dockerignore"
        if path.is_dir():
            kept = [f for f in tracked_files() if f.startswith(rel + "/")]
            assert any(not dockerignore_excludes(f) for f in kept), f"{src}: every file excluded"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_pip_install_has_what_pyproject_needs(dockerfile):
    text = (ROOT / dockerfile).read_text()
    install_at = text.index("RUN pip install .")
    copied = {src.rstrip("/") for src, _ in copy_sources(dockerfile)}
    copied_before = {
        src.rstrip("/")
        for src, line in copy_sources(dockerfile)
        if len("\n".join(text.splitlines()[:line])) < install_at
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["readme"] in copied_before
    assert "pyproject.toml" in copied_before
    find = project["tool"]["setuptools"]["packages"]["find"]
    for where in find["where"]:
        for package in find_packages(ROOT / where, include=find.get("include", ["*"])):
            top = package.split(".")[0]
            root = top if where == "." else f"{where}"
            assert root in copied_before, (
                f"package {package} ({root}) not copied before pip install"
            )
    # what the components and Dagster need at run time
    assert {"dagster_project", "triton_repo"} <= copied


def test_python_files_the_image_needs_are_not_ignored():
    for f in tracked_files():
        if f.startswith(("src/genline/", "components/", "pipelines/", "dagster_project/")):
            assert not dockerignore_excludes(f), f"{f} would be missing from the image"
    assert dockerignore_excludes("tests/unit/k8s/test_manifests.py")
    assert dockerignore_excludes(".venv/bin/python")
    assert dockerignore_excludes("triton_repo/genline_generator/3/model.onnx")
    assert not dockerignore_excludes("triton_repo/genline_generator/config.pbtxt")


@pytest.mark.parametrize("dockerfile,image", DOCKERFILES.items())
def test_image_constant_matches_dockerfile_and_version(dockerfile, image):
    text = (ROOT / dockerfile).read_text()
    tag = image.rsplit(":", 1)[1]
    label = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', text)
    assert label and label.group(1) == tag
    assert f"-t {image} " in text, f"{dockerfile} does not document its build tag {image}"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert PROJECT_IMAGE.endswith(f":{version}")
    assert "USER 1000" in text  # the manifests run as uid 1000


def test_image_for_targets():
    assert image_for("cpu") == PROJECT_IMAGE and image_for("gpu") == PROJECT_IMAGE_GPU
    with pytest.raises(ValueError, match="tpu"):
        image_for("tpu")


@pytest.mark.parametrize(
    "path,excluded",
    [
        ("a/b.pyc", True),
        ("src/genline/x.py", False),
        ("src/x/__pycache__/y", True),
        ("Makefile", True),
    ],
)
def test_dockerignore_matcher(path, excluded):
    assert dockerignore_excludes(path) is excluded
