"""The operator's overview in the admin: daily usage totals per tool, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from portraitsite import usage
from portraitsite.models import DailyCount

PERIODS = (7, 30, 90, usage.RETENTION_DAYS)


@admin.register(DailyCount)
class UsageAdmin(admin.ModelAdmin):
    """The list is a table of totals by day and tool (no row is ever edited by hand)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DailyCount | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DailyCount | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            return super().changelist_view(request, extra_context)  # Django's own refusal
        try:
            days = int(request.GET.get("days", 30))
        except ValueError:
            days = 30
        days = days if days in PERIODS else 30
        overview = usage.table(days)
        columns = [(name, COLUMN_TITLES[name]) for name in overview["columns"]] + [
            (reason, _("failed: %(reason)s") % {"reason": reason.removeprefix(usage.FAILED)})
            for reason in overview["failure_reasons"]
        ]
        rows = [
            {"day": day, "tool": tool or "—", "cells": [values.get(name) for name, _title in columns]}
            for day, tool, values in overview["rows"]
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Usage per day and tool"),
            "columns": columns,
            "rows": rows,
            "totals": [overview["totals"].get(name) for name, _title in columns],
            "periods": PERIODS,
            "days": days,
            "start": overview["start"],
            "end": overview["end"],
            "retention_days": usage.RETENTION_DAYS,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/portraitsite/dailycount/overview.html", context)


COLUMN_TITLES = {
    usage.UPLOADS: _("uploads"),
    usage.PREVIEWS: _("previews made"),
    usage.UNLOCKS: _("unlocks"),
    usage.REMOVEBG_CREDITS: _("remove.bg credits spent"),
    usage.DASHSCOPE_CALLS: _("DashScope billed calls"),
}
