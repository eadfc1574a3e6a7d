"""Staff pages for unlock codes: generate a batch (shown once), list, filter, deactivate.

Codes are created only through "Generate codes", never the standard add form: the plaintext is
made on the server, shown in that one response (with a CSV of it as a data: URL, so no copy is
kept anywhere), and only digests and hints remain. Log entries name codes by their hint.
"""

from __future__ import annotations

import base64
import datetime
import re
import secrets

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.text import slugify
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from unlock import codes
from unlock.forms import GenerateCodesForm
from unlock.issuing import issue
from unlock.models import Redemption, State, UnlockCode

# Random tokens of generate forms not yet submitted, so reloading the page that shows a batch
# (the browser re-posts the form) cannot quietly create a second batch.
PENDING_BATCHES = "unlock.pending_batches"
MAX_PENDING_BATCHES = 20


def _short(moment: datetime.datetime) -> str:
    # The short form keeps the list within the page next to the filters.
    return date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


# Runs of letters and digits: a code's groups, wherever an ellipsis, dashes or spaces split them.
_GROUP = re.compile(r"[0-9A-Za-z]+")


def _code_groups(search_term: str) -> list[str]:
    """The term's groups read the way codes are (O→0, I/L→1), or [] when it cannot be part of a code."""
    groups = [codes.normalise_fragment(group) for group in _GROUP.findall(search_term)]
    if any(character not in codes.ALPHABET for group in groups for character in group):
        return []
    return groups


def _hint_in(search_term: str) -> str:
    """The hint a search term names when it is written the way staff read one: a hint or part of
    one ("7kq2", "…-7KO2"). "" for anything else, such as a label: read as a code, "campaign" would
    end in the hint A1GN."""
    groups = _code_groups(search_term)
    return groups[0] if len(groups) == 1 and len(groups[0]) <= codes.HINT_LENGTH else ""


def _more_than_a_hint(search_term: str) -> bool:
    """A whole code, or groups of one ("ABCD-EFGH"): more of a code than its hint. A search is part
    of the page's address, and addresses end up in access logs, so such a term is never searched:
    staff use "Find a code" (a POST) for whole codes."""
    groups = _code_groups(search_term)
    whole = len(groups) == 1 and len(groups[0]) == codes.LENGTH
    grouped = len(groups) > 1 and all(len(group) <= codes.GROUP for group in groups)
    return whole or (grouped and len("".join(groups)) > codes.HINT_LENGTH)


class StateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(State.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() in State.values:
            return queryset.in_state(self.value())
        return None


class RedemptionInline(admin.TabularInline):
    model = Redemption
    fields = ("created_at", "tool")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("redemptions (time and tool only: nothing about who)")

    def has_add_permission(self, request: HttpRequest, obj: UnlockCode | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UnlockCode | None = None) -> bool:
        return False


@admin.register(UnlockCode)
class UnlockCodeAdmin(admin.ModelAdmin):
    list_display = ("code_hint", "label", "uses", "expiry", "state_display", "created")
    list_filter = (StateFilter, "label")
    search_fields = ("label", "hint")
    actions = ("deactivate", "reactivate")
    inlines = (RedemptionInline,)
    fields = ("code_hint", "state_display", "label", "max_uses", "used", "expires_at", "active", "created_at")
    readonly_fields = ("code_hint", "state_display", "used", "created_at")
    date_hierarchy = "created_at"
    list_per_page = 100

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description=_("code"), ordering="hint")
    def code_hint(self, obj: UnlockCode) -> str:
        return str(obj)

    @admin.display(description=_("uses"), ordering="used")
    def uses(self, obj: UnlockCode) -> str:
        return f"{obj.used}/{obj.max_uses}"

    @admin.display(description=_("expires"), ordering="expires_at")
    def expiry(self, obj: UnlockCode) -> str:
        return _short(obj.expires_at) if obj.expires_at else gettext("never")

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: UnlockCode) -> str:
        return _short(obj.created_at)

    @admin.display(description=_("state"))
    def state_display(self, obj: UnlockCode) -> str:
        return State(obj.state).label

    # --- search: staff type hints the way visitors type codes -------------------------------

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        if _more_than_a_hint(search_term):
            self.message_user(
                request,
                gettext(
                    "Searches are part of the page address, which can end up in logs, so codes are not "
                    "searched by more than their last four characters. To look up a whole code, use "
                    "“Find a code”."
                ),
                messages.WARNING,
            )
            return queryset.none(), False
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        fragment = _hint_in(search_term)
        if fragment and fragment != search_term:
            results = results | queryset.filter(hint__icontains=fragment)
        return results, may_have_duplicates

    # --- permissions: codes come from "Generate codes" only --------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the standard add form would need a plaintext code typed in

    def has_generate_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request)

    # --- saving: `used` and `digest` are never written from a form (UnlockCode.save) ---------

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_generate": self.has_generate_permission(request)}
        return super().changelist_view(request, extra_context)

    # --- actions ---------------------------------------------------------------------------

    @admin.action(description=_("Deactivate selected codes"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description=_("Reactivate selected codes"), permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, True)

    def _set_active(self, request: HttpRequest, queryset: QuerySet, active: bool) -> None:
        ids = list(queryset.exclude(active=active).values_list("pk", flat=True))
        UnlockCode.objects.filter(pk__in=ids).update(active=active)
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=UnlockCode.objects.filter(pk__in=ids),
            action_flag=CHANGE,
            change_message=[{"changed": {"fields": ["active"]}}],
        )
        if active:
            message = ngettext("Reactivated %(count)d code.", "Reactivated %(count)d codes.", len(ids))
        else:
            message = ngettext("Deactivated %(count)d code.", "Deactivated %(count)d codes.", len(ids))
        self.message_user(request, message % {"count": len(ids)}, messages.SUCCESS)

    # --- generate codes --------------------------------------------------------------------

    def get_urls(self):
        generate = path(
            "generate/",
            self.admin_site.admin_view(self.generate_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_generate",
        )
        find = path(
            "find/",
            self.admin_site.admin_view(self.find_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_find",
        )
        return [generate, find, *super().get_urls()]

    def find_view(self, request: HttpRequest) -> HttpResponse:
        """A whole code, sent by POST (never in an address), to the page of its row."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:unlock_unlockcode_changelist"))
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            normalised = codes.normalise(request.POST.get("code", ""))
        except ValidationError:
            found = None
        else:
            found = UnlockCode.objects.filter(digest__in=codes.digests(normalised)).first()
        if found is None:
            self.message_user(request, gettext("No code matches what you entered."), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:unlock_unlockcode_changelist"))
        return HttpResponseRedirect(reverse("admin:unlock_unlockcode_change", args=[found.pk]))

    def generate_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_generate_permission(request):
            raise PermissionDenied
        form = GenerateCodesForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            if not self._take_pending_batch(request, request.POST.get("batch", "")):
                self.message_user(
                    request,
                    gettext(
                        "That form was already sent and its codes were shown once; they cannot be "
                        "shown again. Generate a new batch if you need more."
                    ),
                    messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:unlock_unlockcode_changelist"))
            return self._show_batch(request, form)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Generate unlock codes"),
            "adminform": helpers.AdminForm(form, [(None, {"fields": list(form.fields)})], {}),
            "batch": self._new_pending_batch(request),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/unlock/unlockcode/generate.html", context)

    def _show_batch(self, request: HttpRequest, form: GenerateCodesForm) -> HttpResponse:
        data = form.cleaned_data
        batch = issue(data["count"], data["max_uses"], form.expires_at(), data["label"])
        summary = ngettext(
            "Generated in a batch of %(count)d code.", "Generated in a batch of %(count)d codes.", len(batch.ids)
        ) % {"count": len(batch.ids)}
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=UnlockCode.objects.filter(pk__in=batch.ids),
            action_flag=ADDITION,
            change_message=summary,  # never the codes: the log outlives the page that shows them
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        filename = "-".join(filter(None, ["unlock-codes", slugify(batch.label), stamp])) + ".csv"
        csv_url = "data:text/csv;charset=utf-8;base64," + base64.b64encode(batch.as_csv().encode()).decode()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("New unlock codes"),
            "batch": batch,
            "csv_url": csv_url,
            "csv_filename": filename,
        }
        response = TemplateResponse(request, "admin/unlock/unlockcode/generated.html", context)
        # admin_view already adds never_cache; say it plainly for any cache in between.
        response["Cache-Control"] = "no-store, private"
        return response

    @staticmethod
    def _new_pending_batch(request: HttpRequest) -> str:
        token = secrets.token_urlsafe(16)
        pending = request.session.get(PENDING_BATCHES, [])[-(MAX_PENDING_BATCHES - 1) :]
        request.session[PENDING_BATCHES] = [*pending, token]
        return token

    @staticmethod
    def _take_pending_batch(request: HttpRequest, token: str) -> bool:
        pending = request.session.get(PENDING_BATCHES, [])
        if not token or token not in pending:
            return False
        request.session[PENDING_BATCHES] = [t for t in pending if t != token]
        return True
