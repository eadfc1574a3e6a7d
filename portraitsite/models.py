"""The only table of the site itself: daily usage totals (portraitsite.usage). No image data, ever."""

from decimal import Decimal

from django.db import models

MAX_NAME = 48


class DailyCount(models.Model):
    """One total for one day and tool. There is no other field, on purpose."""

    day = models.DateField()
    tool = models.CharField(max_length=16)  # "cutout", "crowd", …; "" when the tool is not known yet
    name = models.CharField(max_length=MAX_NAME)
    value = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal(0))

    class Meta:
        # Also the index the admin (by day) and the purge (day < cutoff) read through.
        constraints = [models.UniqueConstraint(fields=["day", "tool", "name"], name="one_total_per_day_tool_name")]
        verbose_name = "usage total"

    def __str__(self) -> str:
        return f"{self.day} {self.tool or '-'} {self.name} = {self.value}"
