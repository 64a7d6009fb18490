"""What must never be in a log (DESIGN.md §10), and the scanner that looks for it.

Two kinds of things are looked for:

- shapes: a PEM block, an API token (`cc_…`), a signature parameter or header with a
  long value, an Alipay callback form (`notify_id=…&…`, `sign_type=RSA2`), a WeChat Pay
  callback's encrypted resource (`"ciphertext"`), a second-factor `otpauth://` URI;
- values: the secrets this test run used, wherever they came from: the body lines of
  every PEM key and the contents of every `.key` file in `tests/keys/` and under the
  session's temporary folder (the keys the app and the end-to-end sites generated), and
  the secret keys, APIv3 keys, passwords and bank account numbers the tests' sources
  hold as literals (found by pattern, so a new test's secret is covered too).

Findings name the place and the kind, never the secret itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from app.accounts.services import TOKEN_PREFIX
from app.catalog import demo_data

TESTS = Path(__file__).resolve().parent
KEYS = TESTS / "keys"

SHAPES: dict[str, re.Pattern[str]] = {
    "PEM block": re.compile(r"-----BEGIN [A-Z0-9 ]*-----"),
    "API token": re.compile(r"(?<![A-Za-z0-9_])" + re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{30,}"),
    "signature parameter": re.compile(r"(?<![A-Za-z_])sign=[A-Za-z0-9%+/=_-]{40,}"),
    "signature header": re.compile(r"(?i)signature[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9+/]{80,}"),
    "Alipay callback form": re.compile(r"(?<![A-Za-z_])notify_id=[^&\s]*&|sign_type=RSA2"),
    "WeChat Pay callback resource": re.compile(r"[\"']ciphertext[\"']\s*:"),
    "second-factor URI": re.compile(r"otpauth://"),
}

# Literals in the tests' sources that are secrets: (kind, pattern whose group 1 is one).
_SOURCE_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("secret key", re.compile(r"SECRET(?:_KEY)?[\"']?\s*[:=]\s*[\"']([^\"'\s]{16,})[\"']")),
    ("APIv3 key", re.compile(r"APIV3_KEY[\"']?\s*[:=]\s*[\"']([!-~]{32})[\"']")),
    # Hyphenated words naming a password, as the tests write them: "correct-horse",
    # "staff-password-1"; not an option name such as "--password".
    ("password", re.compile(r"[\"']([a-z0-9]+(?:-[a-z0-9]+)*-(?:pass|password|horse)(?:-[a-z0-9]+)*)[\"']")),
    ("bank account number", re.compile(r"ACCOUNT_NUMBER\s*=\s*[\"'](\d{12,})[\"']")),
)
MIN_NEEDLE = 8


@dataclass(frozen=True)
class Finding:
    where: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.kind}"


def pem_body_lines(text: str) -> Iterator[str]:
    """The base64 lines of a PEM text (or of a bare base64 key), long enough to mean it."""
    for line in text.splitlines():
        line = line.strip()
        if len(line) >= 40 and not line.startswith("-----"):
            yield line


def key_file_needles(folders: Iterable[Path]) -> dict[str, str]:
    """Secret -> kind for every key file under ``folders``."""
    needles: dict[str, str] = {}
    for folder in folders:
        for path in folder.rglob("*.pem"):
            for line in pem_body_lines(path.read_text(errors="replace")):
                needles[line] = f"key material of {path.name}"
        for path in folder.rglob("*.key"):
            text = path.read_text(errors="replace").strip()
            for part in [text, *re.split(r"[,:\s]+", text)]:
                if len(part) >= 16:
                    needles[part] = f"contents of {path.name}"
    return needles


def source_needles(sources: Iterable[Path]) -> dict[str, str]:
    """Secret -> kind for the secret literals of the tests' sources, and the demo logins."""
    needles = {password: "demo password" for _, password, _ in (demo_data.DEMO_LEARNER, demo_data.DEMO_INSTRUCTOR)}
    for path in sources:
        text = path.read_text(errors="replace")
        for kind, pattern in _SOURCE_SECRETS:
            for match in pattern.finditer(text):
                if len(match.group(1)) >= MIN_NEEDLE:
                    needles[match.group(1)] = f"{kind} from {path.name}"
    return needles


def all_needles(temporary: Path | None) -> dict[str, str]:
    folders = [KEYS] + ([temporary] if temporary is not None else [])
    return {**source_needles(sorted(TESTS.rglob("*.py"))), **key_file_needles(folders)}


class Scanner:
    def __init__(self, needles: dict[str, str]) -> None:
        self._needles = needles
        ordered = sorted(needles, key=len, reverse=True)  # the longest secret wins a tie
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def scan_text(self, text: str, where: str) -> list[Finding]:
        findings = []
        for number, line in enumerate(text.splitlines(), start=1):
            for kind, pattern in SHAPES.items():
                if pattern.search(line):
                    findings.append(Finding(where, number, kind))
            if self._values is not None:
                for match in self._values.finditer(line):
                    findings.append(Finding(where, number, self._needles[match.group(0)]))
        return findings

    def scan_files(self, paths: Iterable[Path]) -> list[Finding]:
        findings = []
        for path in paths:
            findings += self.scan_text(path.read_text(errors="replace"), str(path))
        return findings
