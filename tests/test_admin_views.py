from __future__ import annotations

from pathlib import Path

import pytest
from starlette.responses import Response
from starlette.routing import Mount, Route, Router

from grok2api.admin.views import Views, fmt_ago, fmt_bytes, fmt_quota, fmt_time, mask_token

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"


def test_mask_token_never_shows_the_middle() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.payload-secret-part.signature-xyz"
    assert mask_token(token) == "eyJhbGci…re-xyz" and "secret" not in mask_token(token)
    assert mask_token("short-token") == "sho…" and mask_token("ab") == "…"


def test_formatting_filters() -> None:
    assert fmt_time(None) == "—" and fmt_time(0) == "—"
    assert fmt_time(1_800_000_000) == "2027-01-15 08:00 UTC"
    assert fmt_ago(None) == "never"
    assert fmt_ago(100, now=130) == "30 s ago" and fmt_ago(0.5 * 3600 + 100, now=100) == "in 30 min"
    assert fmt_ago(100, now=100 + 7200) == "2.0 h ago" and fmt_ago(0, now=86400 * 3) == "never"
    assert fmt_ago(1, now=1 + 86400 * 3) == "3.0 d ago"
    assert [fmt_bytes(n) for n in (0, 1536, 5 * 1024 * 1024, 3 * 1024**3)] == ["0 B", "1.5 KB", "5.0 MB", "3.0 GB"]
    assert fmt_quota(None) == "?" and fmt_quota(0) == "0"


def test_templates_autoescape() -> None:
    html = Views(TEMPLATES).page("_notice.html", message="<b onclick=x>hi</b>", error=True)
    assert "&lt;b onclick=x&gt;" in html and "<b" not in html


def test_url_names_an_admin_route() -> None:
    views = Views(TEMPLATES)
    with pytest.raises(LookupError):
        views.url("accounts")

    async def endpoint(request: object) -> Response:
        return Response()

    views.router = Router(
        [Route("/manage/accounts", endpoint, name="accounts"), Mount("/static", Response(), name="static")]
    )
    assert views.url("accounts") == "/manage/accounts" and views.url("static", path="app.css") == "/static/app.css"
