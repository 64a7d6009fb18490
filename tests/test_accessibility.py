"""Accessibility basics on every learner, instructor and emulator page, in Chinese and in
English: every form field has a label, every image a text alternative, the pay page's
status change reaches screen readers, and keyboard focus is visible.

The pages are the ones tests/test_i18n_pages.py renders, read with the standard
library's HTML parser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask

from tests.conftest import Clock
from tests.test_i18n_pages import pages_of, visitor_world
from tests.test_route_matrix import World, build_world

__all__ = ["visitor_world"]  # the fixture, shared with the language scan

STYLESHEETS = [Path(__file__).resolve().parents[1] / "static" / "css" / name for name in ("site.css", "gateway.css")]
# Inputs a reader never fills in: no label needed.
UNLABELLED_INPUT_TYPES = {"hidden", "submit", "button", "reset", "image"}
FOCUS_RULE = re.compile(r":focus-visible[^{]*\{[^}]*\boutline\s*:\s*(?!none\b|0\b)[^;}]+", re.S)


@dataclass
class Control:
    tag: str
    attributes: dict[str, str]
    in_label: bool

    def describe(self) -> str:
        named = " ".join(f'{name}="{self.attributes[name]}"' for name in ("name", "id", "type") if name in self.attributes)
        return f"<{self.tag} {named}>"


@dataclass
class PageParts(HTMLParser):
    """The form controls (and whether a <label> wraps each), the ids <label for> names,
    the images, and the elements that are live regions, of one page."""

    controls: list[Control] = field(default_factory=list)
    label_targets: set[str] = field(default_factory=set)
    images: list[dict[str, str | None]] = field(default_factory=list)
    live_regions: list[dict[str, str | None]] = field(default_factory=list)
    labels_open: int = 0

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "label":
            self.labels_open += 1
            if attributes.get("for"):
                self.label_targets.add(attributes["for"])
        elif tag in ("select", "textarea") or (
            tag == "input" and attributes.get("type", "text").lower() not in UNLABELLED_INPUT_TYPES
        ):
            self.controls.append(Control(tag, attributes, self.labels_open > 0))
        elif tag == "img":
            self.images.append(dict(attrs))
        if "aria-live" in attributes or attributes.get("role") in ("status", "alert"):
            self.live_regions.append(dict(attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "label":
            self.labels_open -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self.labels_open:
            self.labels_open -= 1

    def unlabelled(self) -> list[Control]:
        return [
            control for control in self.controls
            if not (control.in_label or control.attributes.get("id") in self.label_targets
                    or control.attributes.get("aria-label", "").strip() or control.attributes.get("aria-labelledby"))
        ]


def parts_of(page: str) -> PageParts:
    parser = PageParts()
    parser.feed(page)
    parser.close()
    return parser


def rendered_pages(world: World) -> Iterator[tuple[str, str, PageParts]]:
    for url, language, page in pages_of(world):
        yield url, language, parts_of(page)


def test_every_form_field_has_a_label_and_every_image_a_text_alternative(visitor_world: World) -> None:
    problems = []
    controls_seen = 0
    for url, language, parts in rendered_pages(visitor_world):
        controls_seen += len(parts.controls)
        problems += [f"{url} [{language}]: {control.describe()} has no label" for control in parts.unlabelled()]
        problems += [f"{url} [{language}]: <img src={image.get('src')!r}> has no alt" for image in parts.images
                     if image.get("alt") is None]
    assert problems == []
    if visitor_world.visitor != "instructor":  # the instructor's pages hold the payout form
        assert controls_seen > 0, "the checks looked at no form field at all"


def test_the_pay_page_announces_its_status_politely(app: Flask, clock: Clock) -> None:
    world = build_world(app, clock, "learner")
    response = world.client.get(world.url("/orders/{pending}/pay"))
    assert response.status_code == 200
    live = parts_of(response.text).live_regions
    status = [region for region in live if region.get("id") == "pay-status"]
    assert len(status) == 1, live
    assert status[0].get("aria-live") == "polite"
    # The states it flips between are inside it; the ticking countdown is not.
    block = response.text.split('id="pay-status"', 1)[1]
    assert 'id="state-paid"' in block and 'id="state-expired"' in block
    assert 'id="countdown"' not in block


def test_flash_messages_are_status_messages(app: Flask, clock: Clock) -> None:
    world = build_world(app, clock, "learner")
    page = world.client.post("/logout", follow_redirects=True).text  # "You are logged out."
    flashes = [region for region in parts_of(page).live_regions if "flash" in (region.get("class") or "")]
    assert flashes, "no flash message to look at"
    assert all(region.get("role") == "status" for region in flashes)


def test_control_checks_catch_a_field_without_a_label() -> None:
    parts = parts_of('<label>Name <input name="a"></label><label for="b">B</label><input id="b">'
                     '<input name="c"><input type="hidden" name="d"><select aria-label="E"></select>'
                     '<img src="x.png"><img src="y.png" alt="">')
    assert [control.attributes.get("name") for control in parts.unlabelled()] == ["c"]
    assert [image.get("src") for image in parts.images if image.get("alt") is None] == ["x.png"]


@pytest.mark.parametrize("stylesheet", STYLESHEETS, ids=lambda path: path.name)
def test_keyboard_focus_is_visible(stylesheet: Path) -> None:
    assert FOCUS_RULE.search(stylesheet.read_text(encoding="utf-8")), f"{stylesheet.name}: no :focus-visible outline"
