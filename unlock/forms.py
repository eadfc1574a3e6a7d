"""Forms that carry the rules for codes, shared by the admin, the site and the issue_codes command."""

from __future__ import annotations

import datetime

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from unlock import codes
from unlock.models import MAX_USES_LIMIT

MAX_BATCH = 1000
MAX_DAYS = 3650


class UnlockForm(forms.Form):
    """What a visitor sends to unlock a job: one code, normalised on the way in."""

    code = forms.CharField(
        label=_("Unlock code"),
        max_length=64,  # a pasted code with generous spacing; anything longer is not a code
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "placeholder": "XXXX-XXXX-XXXX-XXXX",
            }
        ),
        error_messages={"required": codes.MALFORMED_MESSAGE, "max_length": codes.MALFORMED_MESSAGE},
    )

    def clean_code(self) -> str:
        return codes.normalise(self.cleaned_data["code"])


class GenerateCodesForm(forms.Form):
    count = forms.IntegerField(
        label=_("Number of codes"),
        min_value=1,
        max_value=MAX_BATCH,
        initial=10,
    )
    max_uses = forms.IntegerField(
        label=_("Uses per code"),
        min_value=1,
        max_value=MAX_USES_LIMIT,
        initial=1,
        help_text=_("How many downloads each code unlocks."),
    )
    expires_on = forms.DateField(
        label=_("Valid until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The last day the codes work, inclusive (site time). Leave empty for no expiry."),
    )
    expires_in_days = forms.IntegerField(
        label=_("…or valid for days"),
        required=False,
        min_value=1,
        max_value=MAX_DAYS,
        help_text=_("Instead of a date: the codes expire this many days from now."),
    )
    label = forms.CharField(
        label=_("Label"),
        required=False,
        max_length=100,
        help_text=_("What the codes are for, e.g. a campaign. Shown in the list, searchable."),
    )

    def clean_expires_on(self) -> datetime.date | None:
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.localdate():
            raise ValidationError(_("That day has already passed."), code="past")
        return day

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("expires_on") and cleaned.get("expires_in_days"):
            raise ValidationError(_("Give either a date or a number of days, not both."), code="both_expiries")
        return cleaned

    def expires_at(self, now: datetime.datetime | None = None) -> datetime.datetime | None:
        """When the codes stop working: the end of the given day, or now plus the given days."""
        now = now or timezone.now()
        day, days = self.cleaned_data.get("expires_on"), self.cleaned_data.get("expires_in_days")
        if day:
            # Valid through the whole day: expiry is the next midnight in the site's time zone.
            midnight = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time())
            return timezone.make_aware(midnight)
        if days:
            return (now + datetime.timedelta(days=days)).replace(microsecond=0)
        return None
