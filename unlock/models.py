"""Unlock codes and their redemptions.

Neither model holds anything that links a code to a person: a code is stored as an HMAC digest
plus a four-character hint, and a redemption records only when, with which tool and which code.
`used` changes only in SQL (see unlock.redemption), never by saving a model loaded earlier.
"""

from __future__ import annotations

import datetime

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

MAX_USES_LIMIT = 10_000


class State(models.TextChoices):
    ACTIVE = "active", _("active")
    USED_UP = "used_up", _("used up")
    EXPIRED = "expired", _("expired")
    DEACTIVATED = "deactivated", _("deactivated")


class UnlockCodeQuerySet(models.QuerySet):
    # The states are exclusive and checked in one order everywhere (model, filter, redemption):
    # deactivated, then used up, then expired. Only `redeemable` may be reserved.
    def redeemable(self, now: datetime.datetime | None = None) -> UnlockCodeQuerySet:
        now = now or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), active=True, used__lt=F("max_uses"))

    def in_state(self, state: str, now: datetime.datetime | None = None) -> UnlockCodeQuerySet:
        now = now or timezone.now()
        if state == State.ACTIVE:
            return self.redeemable(now)
        if state == State.DEACTIVATED:
            return self.filter(active=False)
        if state == State.USED_UP:
            return self.filter(active=True, used__gte=F("max_uses"))
        if state == State.EXPIRED:
            return self.filter(active=True, used__lt=F("max_uses"), expires_at__lte=now)
        raise ValueError(f"unknown state {state!r}")


class UnlockCode(models.Model):
    digest = models.CharField(_("digest"), max_length=64, unique=True, editable=False)
    hint = models.CharField(_("hint"), max_length=4, editable=False, db_index=True)
    label = models.CharField(
        _("label"), max_length=100, blank=True, help_text=_("What the codes are for, e.g. a campaign.")
    )
    max_uses = models.PositiveIntegerField(
        _("uses"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_USES_LIMIT)],
        help_text=_("How many downloads the code unlocks."),
    )
    used = models.PositiveIntegerField(_("used"), default=0, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    objects = UnlockCodeQuerySet.as_manager()

    class Meta:
        verbose_name = _("unlock code")
        verbose_name_plural = _("unlock codes")
        ordering = ["-created_at", "-pk"]
        constraints = [
            # The conditional UPDATE keeps this true; the constraint makes any other writer fail
            # loudly instead of overselling a code.
            models.CheckConstraint(condition=Q(used__lte=F("max_uses")), name="unlock_used_within_max_uses"),
            models.CheckConstraint(condition=Q(max_uses__gte=1), name="unlock_max_uses_positive"),
        ]

    def __str__(self) -> str:
        return f"…-{self.hint}"

    def save(self, *args, **kwargs) -> None:
        # Saving a code loaded a while ago must not write back a stale `used` (or touch the
        # digest): those columns change only through the conditional UPDATEs of redemption.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name not in ("used", "digest")
            ]
        super().save(*args, **kwargs)

    @property
    def state(self) -> str:
        if not self.active:
            return State.DEACTIVATED
        if self.used >= self.max_uses:
            return State.USED_UP
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return State.EXPIRED
        return State.ACTIVE

    def clean(self) -> None:
        super().clean()
        if self.max_uses is not None and self.max_uses < self.used:
            raise ValidationError(
                {
                    "max_uses": _("This code has already been used %(used)s times; it cannot allow fewer.")
                    % {"used": self.used}
                },
                code="below_used",
            )


class Redemption(models.Model):
    """One reserved use of a code. Deliberately nothing about who: no address, job or browser."""

    class Tool(models.TextChoices):
        CUTOUT = "cutout", _("background removal")
        CROWD = "crowd", _("crowd removal")
        IDPHOTO = "idphoto", _("ID photo")

    code = models.ForeignKey(UnlockCode, on_delete=models.CASCADE, related_name="redemptions", verbose_name=_("code"))
    created_at = models.DateTimeField(_("time"), default=timezone.now, editable=False)
    tool = models.CharField(_("tool"), max_length=10, choices=Tool.choices)
    # False while the full-resolution result is being made. A use still undelivered long after
    # the job deadline was reserved by a process that died (a restart, an OOM kill) with the job
    # in its memory: unlock.redemption.release_stale gives it back.
    delivered = models.BooleanField(_("delivered"), default=False)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.code} · {self.get_tool_display()}"
