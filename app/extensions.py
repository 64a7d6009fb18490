"""Unbound extension singletons; `create_app` binds them. Importing this does nothing."""
from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so migrations can name what they alter on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# No `admin` singleton (DESIGN.md lists one): Flask-Admin 2.2.1 keeps per-app state on the
# Admin and on each view, so `app.admin.init_admin` builds a fresh one for every app.
# No `limiter` singleton either, for the same reason: Flask-Limiter keeps its storage on
# the Limiter, so `app.security.ratelimits.init_rate_limits` builds one per app.
