"""The htmx side of HTTP, after django-htmx: reading ``HX-Request`` and setting the response headers
that steer htmx (``HX-Trigger``, ``HX-Redirect``) in one place."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


def is_htmx(request: Request) -> bool:
    """True for a request htmx sent (it answers with a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"


def trigger(response: Response, event: str) -> Response:
    """Have htmx fire ``event`` on ``<body>`` once the response arrives: the tables listen for
    ``accounts-changed`` / ``keys-changed`` (``hx-trigger="... from:body"``) and reload themselves."""
    response.headers["HX-Trigger"] = event
    return response


def redirect(url: str, status: int = 204) -> Response:
    """Send the browser to ``url``. htmx follows ``HX-Redirect`` whatever the status, where a
    3xx would be followed by the XHR itself and its target swapped into the page."""
    return Response(status_code=status, headers={"HX-Redirect": url})
