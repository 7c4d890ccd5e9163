"""GET/POST /api/settings in the reference's two sections, ``global`` and ``grok``.

Secrets come back masked; posting the mask back (as the reference UI does with the whole section)
leaves the secret alone, and so does re-posting any unchanged or environment-locked value. Unknown
keys and bad values are refused with a 400 naming each field.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ..passwords import ADMIN_HASH_KEY, ADMIN_USER_KEY, hash_password
from ..settings import SECRET_SETTINGS, SettingsError, as_dict
from ..store.base import AdminSession
from .context import Admin
from .json_api import BadRequest, ok, read_object
from .sessions import MIN_PASSWORD_LENGTH
from .settings_meta import GROUP_OF, MASK, humanize, masked

GLOBAL_GROUPS = frozenset({"global", "media"})
SECTIONS = {"global_config": "global", "grok_config": "grok"}


def section_of(name: str) -> str:
    return "global" if GROUP_OF[name] in GLOBAL_GROUPS else "grok"


async def get_settings(request: Request, admin: Admin, session: AdminSession) -> Response:
    data: dict[str, dict[str, Any]] = {"global": {}, "grok": {}}
    for name, value in masked(admin.svc.settings).items():
        data[section_of(name)][name] = value
    data["global"]["admin_username"] = await admin.auth.username()
    data["global"]["admin_password"] = MASK
    return ok(data=data, locked=sorted(admin.svc.overrides), secrets=sorted(SECRET_SETTINGS))


def _same(value: Any, current: Any) -> bool:
    """Equal once read as the current value's type ("30" and 30.0 are the same timeout)."""
    try:
        return bool(msgspec.convert(value, type(current), strict=False) == current)
    except (msgspec.ValidationError, TypeError):
        return False


def _split(
    body: dict[str, Any], current: dict[str, Any], locked: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The real changes in a reference-shaped body, and the admin login fields."""
    changes: dict[str, Any] = {}
    login: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key, section in body.items():
        if key not in SECTIONS:
            errors[key] = "unknown section (use global_config and grok_config)"
            continue
        if not isinstance(section, dict):
            errors[key] = "must be an object"
            continue
        for name, value in section.items():
            if name in ("admin_username", "admin_password"):
                if not isinstance(value, str):
                    errors[name] = "must be a string"
                elif name == "admin_username" and value and not value.strip():
                    errors[name] = "must not be blank"
                elif value and value != MASK:
                    login[name] = value
                continue
            if name not in current:
                errors[name] = "unknown setting"
            elif name in SECRET_SETTINGS and value == MASK:
                continue
            elif _same(value, current[name]) or (name in locked and _same(value, locked[name])):
                continue
            else:
                changes[name] = value
    if errors:
        raise SettingsError(errors)
    return changes, login


async def _login_changes(admin: Admin, session: AdminSession, login: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if "admin_username" in login and login["admin_username"] != await admin.auth.username():
        if admin.auth.env_username:
            errors["admin_username"] = "set by the environment (GROK2API_ADMIN_USERNAME)"
        else:
            out[ADMIN_USER_KEY] = login["admin_username"].strip()
    if "admin_password" in login:
        if admin.auth.env_password:
            errors["admin_password"] = "set by the environment (GROK2API_ADMIN_PASSWORD)"
        elif len(login["admin_password"]) < MIN_PASSWORD_LENGTH:
            errors["admin_password"] = f"use at least {MIN_PASSWORD_LENGTH} characters"
        else:
            out[ADMIN_HASH_KEY] = await asyncio.to_thread(hash_password, login["admin_password"])
    if errors:
        raise SettingsError(errors)
    return out


async def post_settings(request: Request, admin: Admin, session: AdminSession) -> Response:
    body = await read_object(request)
    svc = admin.svc
    try:
        changes, login = _split(body, as_dict(svc.settings), svc.overrides)
        login_values = await _login_changes(admin, session, login)
        if changes:
            await svc.update_settings(changes)
    except SettingsError as exc:
        errors = {k: humanize(v) for k, v in exc.errors.items()}
        raise BadRequest("Invalid settings; nothing was saved.", "INVALID_SETTINGS", errors=errors) from None
    ended = 0
    if login_values:
        await svc.store.save_settings(login_values)
        # New credentials end every other session, as a password change in the pages does.
        ended = await svc.store.delete_sessions(except_id_hash=session.id_hash)
    return ok(
        "Settings updated.", changed=sorted(changes) + sorted(k.lstrip("_") for k in login_values), sessions_ended=ended
    )
