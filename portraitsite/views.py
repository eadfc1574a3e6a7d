"""Site-wide pages: the legal pages, generated from the configuration, and the health check."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portraitsite import legal
from segmentation import jobs, store
from segmentation.engines import engines_in_use


@require_GET
def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "legal/privacy.html", legal.facts())


@require_GET
def terms(request: HttpRequest) -> HttpResponse:
    return render(request, "legal/terms.html", legal.facts())


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's)."""
    return redirect(static("img/favicon.svg"), permanent=True)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    used, budget = store.usage()
    body = {
        "ok": True,
        "store": {"bytes_used": used, "bytes_budget": budget, "ratio": round(used / budget, 4)},
        "jobs_in_flight": jobs.pool().in_flight,
        "job_capacity": jobs.pool().capacity,
        "engines": engines_in_use(),
    }
    if engines_in_use()["cutout"] == "removebg":
        from segmentation.providers.removebg import credits_charged

        body["removebg_credits_charged"] = credits_charged()
    return JsonResponse(body)
