from __future__ import annotations

import csv
import io
import json

from grok2api.admin.accounts_export import CSV_COLUMNS, csv_export, csv_text, json_export
from grok2api.store.base import Account, ModeQuota


def test_csv_has_every_column_and_defuses_formulas() -> None:
    accounts = [
        Account(
            id=1,
            token="t1",
            tags=["=cmd"],
            note="@SUM(1)",
            state_reason="+x",
            quotas={"fast": ModeQuota(remaining=3)},
            created_at=1_800_000_000.0,
        ),
        Account(id=2, token="t2", note="plain, with comma"),
    ]
    rows = list(csv.DictReader(io.StringIO(csv_text(accounts))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert (rows[0]["tags"], rows[0]["note"], rows[0]["state_reason"]) == ("'=cmd", "'@SUM(1)", "'+x")
    assert (rows[0]["remaining"], rows[1]["remaining"]) == ("3", "")
    assert rows[0]["created_at"] == "2027-01-15T08:00:00+00:00"
    assert rows[1]["note"] == "plain, with comma"


def test_downloads_are_attachments() -> None:
    csv_response = csv_export([])
    assert bytes(csv_response.body).startswith("\ufeff".encode())
    assert csv_response.headers["Content-Disposition"].endswith('.csv"')
    doc = json.loads(bytes(json_export([Account(id=1, token="t", tier="super")]).body))
    assert list(doc["ssoSuper"]) == ["t"] and doc["ssoNormal"] == {}
