"""Property tests over the HTML admin's forms, in process and signed in (cookie and CSRF token): whatever the fields,
path ids and headers, never a 500, and every error is an admin page or htmx notice (HTML), never a traceback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
import pytest_asyncio
from asgi_client import AsgiResponse
from fuzzing import CLIENTS, FUZZ, PNG, FuzzApp, fuzz_app, multipart, texts
from hypothesis import example, given
from hypothesis import strategies as st

from grok2api.admin.guard import COOKIE_NAME, CSRF_HEADER
from grok2api.admin.settings_meta import FIELDS_BY_GROUP

pytestmark = pytest.mark.asyncio(loop_scope="module")

DOCUMENTED = {200, 204, 303, 400, 401, 403, 404, 409, 413, 422, 429}
_CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')
TEXT = texts()


@dataclass
class SignedIn:
    gw: FuzzApp
    cookie: str
    csrf: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SignedIn]:
    async with fuzz_app(tmp_path_factory.mktemp("fuzz-forms")) as gw:
        token = await gw.admin_token()
        page = await gw.request("GET", "/manage", headers=[("cookie", f"{COOKIE_NAME}={token}")])
        found = _CSRF.search(page.body.decode())
        assert page.status == 200 and found, page.body[:300]
        yield SignedIn(gw, token, found.group(1))


def check(answer: AsgiResponse) -> None:
    assert answer.status in DOCUMENTED, (answer.status, answer.body[:300])
    if answer.status >= 400 and not (answer.status == 401 and "hx-redirect" in answer.headers):
        assert answer.content_type == "text/html", answer.headers
        assert b"Traceback" not in answer.body


SETTING_FIELDS = sorted({f.name for fields in FIELDS_BY_GROUP.values() for f in fields})
FIELD_NAMES = st.one_of(
    st.sampled_from(
        [
            *SETTING_FIELDS,
            "tokens",
            "tier",
            "action",
            "scope",
            "ids",
            "bulk_tag",
            "tags-1",
            "note-1",
            "name",
            "rpm",
            "expires",
            "models",
            "current",
            "new",
            "confirm",
            "username",
            "password",
        ]
    ),
    TEXT,
)
FIELD_VALUES = st.one_of(
    st.sampled_from(["", "1", "0", "-1", "true", "basic", "super", "delete", "enable", "tag", "grok-fast", "matching"]),
    TEXT,
)
IDS = st.one_of(st.sampled_from(["1", "2", "3", "0", "999999999999999999999"]), TEXT).map(lambda i: quote(i, safe=""))
TARGETS = st.one_of(
    st.sampled_from(["/manage/accounts/add", "/manage/accounts/bulk", "/manage/keys", "/manage/settings/password"]),
    st.builds(
        lambda g: f"/manage/settings/{quote(g, safe='')}", st.one_of(st.sampled_from(sorted(FIELDS_BY_GROUP)), TEXT)
    ),
    st.builds(
        lambda i, a: f"/manage/accounts/{i}/{a}", IDS, st.sampled_from(["edit", "test", "refresh", "toggle", "delete"])
    ),
    st.builds(lambda i: f"/manage/keys/{i}/revoke", IDS),
    st.builds(
        lambda k: f"/manage/cache/clear/{quote(k, safe='')}", st.one_of(st.sampled_from(["images", "all"]), TEXT)
    ),
)


@FUZZ
@given(
    target=TARGETS,
    fields=st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=8),
    as_multipart=st.booleans(),
    htmx=st.booleans(),
    csrf=st.sampled_from(["valid", "valid", "valid", "wrong", "missing"]),
)
# An upload refused before its handler runs (a wrong CSRF token) still has its temporary file closed.
@example(target="/manage/accounts/add", fields=[("tier", "basic")], as_multipart=True, htmx=False, csrf="wrong")
async def test_forms(
    admin: SignedIn, target: str, fields: list[tuple[str, str]], as_multipart: bool, htmx: bool, csrf: str
) -> None:
    headers = [("cookie", f"{COOKIE_NAME}={admin.cookie}")]
    if csrf != "missing":
        headers.append((CSRF_HEADER, admin.csrf if csrf == "valid" else "not-the-token"))
    if htmx:
        headers.append(("hx-request", "true"))
    if as_multipart:
        body, content_type = multipart(fields, [("file", PNG)] if target.endswith("/add") else [])
        headers += content_type
    else:
        body = urlencode(fields).encode()
        headers.append(("content-type", "application/x-www-form-urlencoded"))
    check(await admin.gw.request("POST", target, body, headers))


@FUZZ
@given(
    fields=st.lists(st.tuples(st.sampled_from(["username", "password", "csrf_token", "next"]), TEXT), max_size=4),
    client=CLIENTS,
)
async def test_sign_in_form(admin: SignedIn, fields: list[tuple[str, str]], client: str) -> None:
    body = urlencode(fields).encode()
    headers = [("content-type", "application/x-www-form-urlencoded")]
    check(await admin.gw.request("POST", "/login", body, headers, client))
