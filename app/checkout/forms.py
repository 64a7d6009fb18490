from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import AnyOf, DataRequired

from app.config import CHANNELS


class ChannelForm(FlaskForm):
    """A button on the pay page: pay this order with another channel."""

    channel = HiddenField(validators=[DataRequired(), AnyOf(CHANNELS)])
