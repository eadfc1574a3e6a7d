from django import template
from django.urls import translate_url

register = template.Library()


@register.simple_tag(takes_context=True)
def language_url(context, code: str) -> str:
    """This page's address in another language (the language lives in the URL prefix)."""
    request = context.get("request")
    if request is None:
        return "/"
    return translate_url(request.path, code)
