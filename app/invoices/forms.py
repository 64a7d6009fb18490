from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from app.invoices.rules import MAX_TITLE


class InvoiceRequestForm(FlaskForm):
    """The learner's request. The tax id's format and check character are the service's
    to judge (app/invoices/rules.py), so the API of a later client gets the same rule."""

    title_type = RadioField(_l("Invoice for"), choices=[SelectChoice("personal", _l("Myself (personal)")),
                                                         SelectChoice("company", _l("A company"))],
                            default="personal", validators=[DataRequired(_l("Choose a personal or a company invoice."))])
    title = StringField(_l("Invoice title (your name or the company's full name)"), validators=[
        DataRequired(_l("Please give the invoice title.")),
        Length(max=MAX_TITLE, message=_l("The invoice title is at most %(max)d characters.", max=MAX_TITLE)),
    ])
    tax_id = StringField(_l("Tax id (unified social credit code, companies only)"), validators=[Length(max=40)])
    email = EmailField(_l("E-mail to send the invoice to"), validators=[
        DataRequired(_l("Please give the e-mail address to send the invoice to.")),
        Email(_l("Please give the e-mail address to send the invoice to.")), Length(max=254),
    ])
