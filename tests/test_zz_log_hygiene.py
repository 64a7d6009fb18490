"""No secrets, keys, tokens, passwords or callback payloads in the logs of the whole
test run (DESIGN.md §10): the session's log (tests/conftest.py `session_log`) and the
logs of the live sites, workers and servers the end-to-end and fault tests started.

This module runs last (tests/conftest.py moves it there), so it reads the finished logs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SESSION_LOG
from tests.log_scan import SHAPES, Scanner, all_needles

PLANTED = "planted.txt"  # the self-test's log: not a .log, so the real scan skips it


def session_logs(base: Path) -> list[Path]:
    return sorted(path for path in base.rglob("*.log") if path.is_file())


def test_the_scan_finds_each_kind_of_leak(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The scan below is not vacuous: planted secrets of every kind are found."""
    needles = all_needles(tmp_path_factory.getbasetemp())
    pem_line = next(value for value, kind in needles.items() if kind.startswith("key material of wechat_mch_private"))
    planted = tmp_path / PLANTED
    planted.write_text("\n".join([
        "INFO app: nothing to see here",
        "ERROR app: key -----BEGIN PRIVATE KEY-----",
        f"DEBUG app: loaded {pem_line}",
        "INFO app: secret test-secret-key-that-is-long-enough-000",
        "INFO app: login ann@example.com with correct-horse",
        "INFO app: token cc_" + "A1b2C3d4" * 5,
        "WARNING app: body notify_id=n-1&out_trade_no=CC1&sign=" + "Q" * 300,
        'WARNING app: body {"resource": {"ciphertext": "abc"}}',
        "INFO app: enrol otpauth://totp/CourseCashier:ada?secret=JBSWY3DPEHPK3PXP",
        "INFO app: account 6222020200001234567",
        'DEBUG urllib3: Authorization: WECHATPAY2-SHA256-RSA2048 mchid="1900000001",signature="' + "B" * 344 + '"',
    ]))
    findings = Scanner(needles).scan_files([planted])
    assert {finding.line for finding in findings} == set(range(2, 12))
    kinds = {finding.kind for finding in findings}
    assert set(SHAPES) <= kinds
    assert any(kind.startswith("secret key") for kind in kinds)
    assert any(kind.startswith("password") for kind in kinds)
    assert any(kind.startswith("bank account number") for kind in kinds)
    assert all("correct-horse" not in str(finding) for finding in findings)  # a finding never repeats it


def test_no_log_of_the_test_run_holds_a_secret(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    logs = session_logs(base)
    assert base / SESSION_LOG in logs
    findings = Scanner(all_needles(base)).scan_files(logs)
    assert [str(finding) for finding in findings] == []
