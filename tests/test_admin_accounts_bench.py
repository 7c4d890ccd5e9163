from __future__ import annotations

from pathlib import Path

from grok2api.admin.accounts_bench import bench_accounts_page
from grok2api.config import BootConfig
from grok2api.services import Services


async def test_bench_renders_the_real_page_and_reports_seconds(tmp_path: Path) -> None:
    svc = Services(BootConfig(data_dir=tmp_path))
    await svc.start()
    try:
        seconds = await bench_accounts_page(svc, n=300, rounds=1)
        assert 0 < seconds < 60
        assert len(svc.pool.accounts()) == 300
    finally:
        await svc.stop()
