"""Imports every model module so the metadata (and Alembic) sees every table."""
from app.accounts import models as accounts_models  # noqa: F401
from app.cart import models as cart_models  # noqa: F401
from app.catalog import models as catalog_models  # noqa: F401
from app.checkout import models as checkout_models  # noqa: F401
from app.earnings import models as earnings_models  # noqa: F401
from app.ledger import models as ledger_models  # noqa: F401
from app.payments import models as payments_models  # noqa: F401
from app.audit import models as audit_models  # noqa: F401
from app.gateway import models as gateway_models  # noqa: F401
from app.reconciliation import models as reconciliation_models  # noqa: F401
from app.invoices import models as invoices_models  # noqa: F401
from app.mail import models as mail_models  # noqa: F401
from app.receipts import models as receipts_models  # noqa: F401
from app.platform_events import models as platform_events_models  # noqa: F401
from app.renewal import models as renewal_models  # noqa: F401
from app.bundles import models as bundles_models  # noqa: F401
from app.membership import models as membership_models  # noqa: F401
