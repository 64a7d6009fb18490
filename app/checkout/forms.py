from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.config import CHANNELS
from app.i18n import current_language
from app.money import display_yuan
from app.payments.refund_workflow import RefundPolicy


class ChannelForm(FlaskForm):
    """A button on the pay page: pay this order with another channel."""

    channel = HiddenField(validators=[DataRequired(), AnyOf(CHANNELS)])


class RefundRequestForm(FlaskForm):
    """The learner's refund request: the courses to give back, and why."""

    lines = SelectMultipleField(
        _l("Courses to refund"), coerce=int, choices=[],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
    )
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=255)])

    def offer(self, policy: RefundPolicy) -> None:
        english = current_language() == "en"
        self.lines.choices = [
            SelectChoice(
                line.order_line_id,
                f"{line.title_en if english else line.title} · {display_yuan(line.amount_fen)}",
            )
            for line in policy.lines
            if line.refundable
        ]
