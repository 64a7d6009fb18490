"""Flask-Admin's own templates, reachable as ``flask_admin/admin/…``.

Flask-Admin 2.2.1's bootstrap4 templates carry a few things our Content-Security-Policy
refuses (``javascript:void(0)`` links, ``onclick`` handlers). We override exactly those
templates under ``templates/admin/`` (the application's folder is searched before
Flask-Admin's), and each override extends or imports the original through this prefix,
so it restates only the blocks and macros it changes.

Not made CSP-clean, because no view of ours uses them: the modal create / edit / details
windows (``*_modal``), inline model forms and the file and Redis views.
"""
from __future__ import annotations

from pathlib import Path

import flask_admin
from flask import Flask
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader

PREFIX = "flask_admin"


def expose_flask_admin_templates(app: Flask, folder: str = "bootstrap4") -> None:
    originals = FileSystemLoader(str(Path(flask_admin.__file__).parent / "templates" / folder))
    loaders = [loader for loader in (app.jinja_loader,) if loader is not None]
    app.jinja_loader = ChoiceLoader([*loaders, PrefixLoader({PREFIX: originals})])  # type: ignore[method-assign]
