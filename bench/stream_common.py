"""What the stream benchmarks share: the machine and its load, process memory, bench settings.

The stream benchmarks run on a shared machine, so every figure is printed with the load average
at the moment it was taken.
"""

from __future__ import annotations

import os
import platform
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from stream.settings import StreamSettings

__all__ = ["BENCH_EPOCH", "bench_settings", "cpu_seconds", "load", "machine", "rss_mb"]

#: the first Monday of the simulated data (``qualitywatch.evaluation.simulate``'s default start)
BENCH_EPOCH = datetime(2021, 1, 4, tzinfo=ZoneInfo("Asia/Shanghai"))


def machine() -> str:
    """CPU model and core count, e.g. ``AMD EPYC, 2 cores, Linux 6.1``."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def load() -> str:
    """The 1/5/15-minute load averages, as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default) in MB, from ``/proc``."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"pid {pid}: no VmRSS in /proc status")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) a process has used so far, from ``/proc`` (load-independent)."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15 of stat(5)


def bench_settings(bootstrap: str, checkpoint_dir: Path, **overrides: object) -> StreamSettings:
    """Embedded-profile settings with a fresh topic prefix, group and checkpoint database."""
    tag = uuid.uuid4().hex[:8]
    kw: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": f"b{tag}.",
        "group_id": f"g{tag}",
        "app_id": f"qw{tag}",
        "epoch": BENCH_EPOCH,
        "checkpoint_url": f"sqlite:///{checkpoint_dir / f'cp-{tag}.db'}",
        "web_enabled": False,
    }
    kw.update(overrides)
    return StreamSettings(**kw)  # type: ignore[arg-type]
