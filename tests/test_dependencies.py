"""Every dependency is pinned to one exact version (README, Security): what CI tests is
what `make audit` checks and what production installs, down to the packages our
packages pull in."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PINNED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[0-9][A-Za-z0-9.+!-]*")


@pytest.mark.parametrize("name", sorted(path.name for path in ROOT.glob("requirements*.txt")))
def test_every_requirement_is_pinned_exactly(name: str) -> None:
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("-r ")]
    assert requirements
    assert [line for line in requirements if not PINNED.fullmatch(line)] == []


def _pins(name: str) -> dict[str, str]:
    """Canonical project name → version pinned in one requirements file (not what it includes)."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement and not requirement.startswith("-r "):
            project, _, version = requirement.partition("==")
            pins[canonicalize_name(project.split("[", 1)[0])] = version
    return pins


def _needs(project: str) -> set[str]:
    """What an installed project requires on this machine (extras not asked for left out)."""
    needed = set()
    for text in metadata.requires(project) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            needed.add(canonicalize_name(requirement.name))
    return needed


def test_the_runtime_pins_hold_everything_the_runtime_packages_need() -> None:
    """Production installs requirements.txt alone: every package a runtime package needs,
    however deep, is pinned there, not left to whatever the index has that day."""
    runtime = _pins("requirements.txt")
    unpinned = {f"{project} (needed by {needer})"
                for needer in runtime for project in _needs(needer) - runtime.keys()}
    assert unpinned == set()


def test_the_test_pins_hold_everything_the_test_packages_need() -> None:
    pinned = _pins("requirements.txt") | _pins("requirements-dev.txt")
    unpinned = {f"{project} (needed by {needer})"
                for needer in _pins("requirements-dev.txt") for project in _needs(needer) - pinned.keys()}
    assert unpinned == set()


def test_what_is_installed_is_what_is_pinned() -> None:
    """The virtualenv the tests run in holds exactly the pinned versions (a stale one
    fails here: `make clean test` rebuilds it)."""
    pinned = _pins("requirements.txt") | _pins("requirements-dev.txt")
    installed = {canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    tools = {"pip", "setuptools", "wheel"}
    assert {name: version for name, version in installed.items() if name not in tools} == pinned
