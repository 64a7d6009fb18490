"""The layers of DESIGN.md §3, checked on the source with `ast`.

Each rule names modules and what they may not import or call; a new module falls under
the rules by its path, so the test keeps working as the code grows.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(APP.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def calls_commit(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
        for node in ast.walk(tree)
    )


def violates(imported: str, prefixes: tuple[str, ...]) -> bool:
    """Whether an imported name falls under one of ``prefixes``.

    A package's own ``__init__`` (``app.payments``) forbids only itself, not every module
    under it; other prefixes (``flask``, ``app.jobs``) cover their submodules too.
    """
    for prefix in prefixes:
        if imported == prefix:
            return True
        if imported.startswith(prefix + ".") and not _is_package_init(prefix):
            return True
    return False


def _is_package_init(name: str) -> bool:
    path = MODULES.get(name)
    return path is not None and path.name == "__init__.py" and any(
        other.startswith(name + ".") for other in MODULES
    ) and name not in EXPLICIT_PACKAGES


# Packages forbidden as a whole where a rule names them directly.
EXPLICIT_PACKAGES = {"app.jobs", "app.checkout", "app.cart", "app.catalog", "app.ledger",
                     "app.accounts", "app.gateway"}


PURE = ("app.money", "app.cart.pricing", "app.payments.states", "app.fieldcrypto", "app.earnings.chart",
        "app.reconciliation.matching", "app.analytics.measures")
CHANNELS = tuple(name for name in MODULES if name.startswith("app.payments.channels"))
# Modules that move money or state and leave the commit to their caller.
FLUSH_ONLY = ("app.cart.coupons", "app.payments.settlement", "app.payments.refunds",
              "app.payments.health", "app.earnings.rules", "app.earnings.maturity",
              "app.earnings.statements", "app.earnings.payouts", "app.earnings.adjustments",
              "app.earnings.bank_accounts", "app.accounts.mfa", "app.accounts.signin", "app.mail.notices")
SERVICES = tuple(name for name in MODULES if name.endswith(".services") or name in FLUSH_ONLY)
MODELS = tuple(name for name in MODULES if name.endswith(".models"))
GATEWAY = tuple(name for name in MODULES if name.startswith("app.gateway"))
FRAMEWORK = ("flask", "flask_sqlalchemy", "flask_login", "flask_wtf", "sqlalchemy", "app.extensions")
ALL_APP_BUT = lambda *allowed: tuple(  # noqa: E731
    name for name in MODULES
    if name != "app" and not any(name == a or name.startswith(a + ".") for a in allowed)
)

RULES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("pure helpers use no framework and no other app module",
     PURE, FRAMEWORK + ALL_APP_BUT("app.money")),
    ("channels are plain Python: no Flask, no database, no models",
     CHANNELS, FRAMEWORK + ALL_APP_BUT("app.money", "app.payments.channels")),
    ("services never enqueue; the boundary does after commit",
     SERVICES, ("app.jobs",)),
    ("nothing below the boundary imports views",
     SERVICES + MODELS + PURE + CHANNELS, tuple(n for n in MODULES if n.endswith(".views"))),
    ("models import no services, views or jobs",
     MODELS, tuple(n for n in MODULES if n.endswith((".services", ".views"))) + ("app.jobs",)),
    ("the emulator is another party: it sees none of our payment internals",
     GATEWAY,
     ("app.checkout", "app.cart", "app.catalog", "app.ledger", "app.accounts", "app.jobs",
      "app.payments.models", "app.payments.services", "app.payments.views",
      "app.payments.precreate", "app.payments.registry", "app.payments.settlement",
      "app.payments.refunds", "app.payments.resolution", "app.payments.health")),
]


@pytest.mark.parametrize(("rule", "modules", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_no_forbidden_import(rule: str, modules: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert modules, f"rule {rule!r} matches no module"
    offences = sorted(
        f"{module} imports {imported}"
        for module in modules
        for imported in imports_of(MODULES[module])
        if violates(imported, forbidden) and not violates(imported, (module,))
    )
    assert offences == [], rule


def test_services_flush_but_never_commit() -> None:
    assert [name for name in SERVICES if calls_commit(MODULES[name])] == []


def test_rules_catch_a_forbidden_edge(tmp_path: Path) -> None:
    """The checker itself can fail: a channel importing Flask is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from flask import current_app\nimport app.payments.models\n")
    found = imports_of(bad)
    assert violates("flask", FRAMEWORK) and "flask" in found
    assert any(violates(name, ("app.payments.models",)) for name in found)
