from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

from grok2api.admin.htmx import is_htmx, redirect, trigger


def request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": raw})


def test_is_htmx() -> None:
    assert is_htmx(request(HX_Request="true"))
    assert not is_htmx(request()) and not is_htmx(request(HX_Request="false"))


def test_trigger_keeps_the_response() -> None:
    response = HTMLResponse("<p>done</p>", status_code=404)
    assert trigger(response, "accounts-changed") is response
    assert response.headers["HX-Trigger"] == "accounts-changed" and response.status_code == 404


def test_redirect() -> None:
    assert (redirect("/login").status_code, redirect("/login").headers["HX-Redirect"]) == (204, "/login")
    assert redirect("/login", status=401).status_code == 401
