from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def total(value: Decimal | None) -> str:
    """A count as a whole number, credits with their fraction (0.25 per preview); blank for none."""
    if value is None:
        return ""
    return f"{value.normalize():f}" if value != value.to_integral_value() else str(int(value))
