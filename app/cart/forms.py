from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length


class CouponForm(FlaskForm):
    code = StringField("Coupon code", validators=[DataRequired(), Length(max=40)])


class CheckoutForm(FlaskForm):
    channel = RadioField(
        "Pay with", choices=[SelectChoice("alipay", "Alipay 支付宝")], default="alipay",
        validators=[DataRequired()],
    )
