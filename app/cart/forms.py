from __future__ import annotations

from typing import Sequence

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from app.payments.registry import ChannelOption


class CouponForm(FlaskForm):
    code = StringField(_l("Coupon code"), validators=[DataRequired(), Length(max=40)])


class CheckoutForm(FlaskForm):
    """Choices are the channels available now (`offer_channels`); the first is preselected."""

    channel = RadioField(_l("Pay with"), choices=[], validators=[DataRequired()])
    # The prepaid balance (app/wallet); offered on the page only to a learner who has one.
    use_balance = RadioField(_l("Use my balance"), default="none", choices=[
        SelectChoice("none", _l("No")), SelectChoice("full", _l("Pay everything from my balance")),
        SelectChoice("part", _l("Use my balance, pay the rest with the channel")),
    ])

    def offer_channels(self, options: Sequence[ChannelOption]) -> None:
        self.channel.choices = [
            SelectChoice(option.name, option.label) for option in options if option.available
        ]
        if self.channel.data is None and self.channel.choices:
            self.channel.data = self.channel.choices[0].value
