"""Site-wide pages: the legal pages, generated from the configuration, and the health check."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portraitsite import health, legal, outages


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
def healthz(request: HttpRequest) -> HttpResponse:
    """A bare {"ok": true} for load balancers; the details (portraitsite.health) for the token's holder.
    While the job store or the database is unreachable (portraitsite.outages) it is {"ok": false}
    with 503, and the details name what is down."""
    allowed = health.access(request)
    if allowed == health.Access.REFUSED:
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="healthz"'
        return response
    down = outages.unreachable()
    status = 503 if down else 200
    if allowed == health.Access.DETAILS:
        return JsonResponse({"ok": not down, "unreachable": down, **health.details()}, status=status)
    return JsonResponse({"ok": not down}, status=status)
