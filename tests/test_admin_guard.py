from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from grok2api.admin.guard import CSP, is_https, same_origin, secure_headers


def request(method: str = "POST", scheme: str = "http", **headers: str) -> Request:
    raw = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {
            "type": "http",
            "method": method,
            "scheme": scheme,
            "path": "/",
            "query_string": b"",
            "headers": [(b"host", b"admin.example:8000"), *raw],
            "server": ("admin.example", 8000),
        }
    )


def test_same_origin() -> None:
    assert same_origin(request())  # no Origin header (curl, older browsers): the CSRF token decides
    assert same_origin(request(Origin="http://admin.example:8000"))
    assert not same_origin(request(Origin="http://evil.example"))
    assert not same_origin(request(Origin="http://admin.example"))  # another port is another origin
    assert not same_origin(request(Origin="null"))
    assert not same_origin(request(Sec_Fetch_Site="cross-site"))
    assert not same_origin(request(Sec_Fetch_Site="same-site"))
    assert same_origin(request(Sec_Fetch_Site="same-origin", Origin="http://admin.example:8000"))
    # A proxy that rewrites Host: the browser's Sec-Fetch-Site, or X-Forwarded-Host, still vouches.
    assert same_origin(request(Sec_Fetch_Site="same-origin", Origin="https://grok.example"))
    assert same_origin(request(Origin="https://grok.example", X_Forwarded_Host="grok.example"))
    assert not same_origin(request(Origin="https://evil.example", X_Forwarded_Host="grok.example"))


def test_is_https() -> None:
    assert not is_https(request())
    assert is_https(request(scheme="https"))
    assert is_https(request(X_Forwarded_Proto="https, http"))


def test_secure_headers() -> None:
    response = secure_headers(Response("x"))
    assert response.headers["Content-Security-Policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers["Vary"]
    kept = secure_headers(Response("x", headers={"Cache-Control": "private, max-age=5"}))
    assert kept.headers["Cache-Control"] == "private, max-age=5"
