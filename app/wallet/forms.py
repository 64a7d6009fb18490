from __future__ import annotations

from typing import Sequence

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from app.payments.registry import ChannelOption


class TopupForm(FlaskForm):
    """A top-up: an amount in yuan (parsed strictly, `parse_yuan`) and the channel."""

    amount = StringField(_l("Amount (yuan)"), validators=[DataRequired(), Length(max=16)])
    channel = RadioField(_l("Pay with"), choices=[], validators=[DataRequired()])

    def offer_channels(self, options: Sequence[ChannelOption]) -> None:
        self.channel.choices = [SelectChoice(option.name, option.label) for option in options if option.available]
        if self.channel.data is None and self.channel.choices:
            self.channel.data = self.channel.choices[0].value
