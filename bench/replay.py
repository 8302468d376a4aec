"""Replay throughput and memory: records/s on one core, and peak memory at two file sizes.

    python bench/replay.py                      # 200,000 and 1,000,000 generated records
    python bench/replay.py --records 500000     # 200,000 and 500,000
    python bench/replay.py --events FILE        # an existing sampling file (one size)
    python bench/replay.py --breakdown          # and the CPU per record of each detector family
    python bench/replay.py --rounds 3           # each input three times, the fastest round reported

Each size is replayed in a fresh child process pinned to one CPU (so peak RSS is that run's own),
with the same detector code ``qualitywatch replay`` runs, warnings serialised to JSON and discarded.
The generated stream has a fixed volume per week (``--per-week``), so a larger file is a longer
history, not a denser one: if memory is bounded by the detectors' state, the two peaks match.

The "ref. loop" column times a fixed pure-Python workload in the same child, just before the replay
(:func:`reference_ms`): a shared machine's speed changes from day to day, and records/s measured on
different days compare only next to it. So does the interpreter's build: CPython built with
profile-guided and link-time optimisation (Debian's, the deploy image's) replays 16-19 % faster than
the same version built without (pyenv's default); run the benchmark with the interpreter you deploy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

__all__ = ["generate", "main", "measure"]

_CST = timezone(timedelta(hours=8))
_START = datetime(2021, 1, 4, tzinfo=_CST)  # a Monday
_PRODUCTS = {
    "building_materials": ["水泥", "cement", "brick"],
    "textiles": ["童装", "children's clothing", "carpet"],
    "agricultural_processing": ["杏干", "walnut", "flour"],
    "food_processing": ["馕", "dairy product", "食用植物油"],
    "light_industry": ["plastic ware", "刺绣制品"],
    "ethnic_handicrafts": ["embroidery", "手工地毯"],
    "agricultural_inputs": ["fertilizer", "复合肥"],
    "consumer_goods": ["electric heater", "plastic products"],
}


def generate(
    path: Path, records: int, *, per_week: int = 2500, enterprises: int = 10000, seed: int = 7
) -> tuple[datetime, datetime]:
    """Write ``records`` valid sampling results (about 1 % resubmitted) to ``path``; return the time span.

    Records arrive roughly in event-time order (up to six hours out of order), ``per_week`` a week,
    from ``enterprises`` enterprises of differing reliability; a tenth carry test-item values.
    """
    from schemas import default_catalogue
    from schemas.uscc import USCC_ALPHABET, uscc_check_char

    cat = default_catalogue()
    rng = random.Random(seed)
    pool = []
    for n in range(enterprises):
        region = cat.region_codes[n % len(cat.region_codes)]
        ind = cat.industries[rng.randrange(len(cat.industries))]
        body = "91" + region + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
        fail = (0.03 if ind.category == "food_agri" else 0.06) * rng.choice((0.3, 1.0, 1.0, 2.5))
        pool.append(
            (
                body + uscc_check_char(body),
                region,
                ind.slug,
                ind.hazard_items,
                fail,
                _PRODUCTS[ind.slug],
            )
        )
    step = 7 * 86400 / per_week
    last = _START
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as fh:
        previous = ""
        for i in range(records):
            if previous and rng.random() < 0.01:
                fh.write(previous)  # a resubmission: same id, same content
                continue
            uscc, region, industry, items, fail, products = pool[rng.randrange(enterprises)]
            when = _START + timedelta(seconds=i * step - rng.random() * 21600)
            last = max(last, when)
            failed = [rng.choice(items)] if rng.random() < fail else []
            test_items = ""
            if rng.random() < 0.1:
                parts = []
                for item in items[:3]:
                    ratio = rng.uniform(1.05, 1.6) if item in failed else rng.uniform(0.2, 0.95)
                    parts.append(
                        f'{{"name": "{item}", "value": {ratio * 10:.3f}, "limit": 10.0, "unit": "mg/kg", '
                        f'"passed": {"false" if item in failed else "true"}}}'
                    )
                test_items = ', "test_items": [' + ", ".join(parts) + "]"
            previous = (
                f'{{"id": "S{i:09d}", "sampled_at": "{when.isoformat()}", "region": "{region}", '
                f'"industry": "{industry}", "product": "{rng.choice(products)}", "enterprise_id": "{uscc}", '
                f'"passed": {"false" if failed else "true"}, "failed_items": {json.dumps(failed)}'
                f'{test_items}, "inspector_id": "INS-{rng.randrange(60):03d}", '
                '"source": "supervision_sampling"}\n'
            )
            fh.write(previous)
    return _START, last


class _Counter:
    __slots__ = ("seen", "total")

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.total = 0.0

    def add(self, key: str, value: float) -> bool:
        old = self.seen.get(key)
        self.seen[key] = value
        self.total += value
        return old is None or value > old


def reference_ms(rounds: int = 3) -> float:
    """Milliseconds of a fixed pure-Python workload, the fastest of ``rounds``: the machine's speed.

    Dict, list, heap, attribute and call traffic, as in the replay's own loop, and no I/O. Shared
    machines run at different speeds on different days: a figure of records/s reads best next to
    this one, taken in the same process on the same CPU (lower means a faster machine).
    """
    import heapq

    keys = [f"E{i:05d}" for i in range(5000)]
    best = math.inf
    for _ in range(rounds):
        started = time.process_time()
        counter, new = _Counter(), 0
        heap: list[float] = []
        for i in range(300_000):
            key = keys[i % 5000]
            value = (i * 7919) % 10007 / 10007.0
            if counter.add(key, value):  # a branch taken both ways, as the replay's are
                new += 1
            heapq.heappush(heap, value)
            if len(heap) > 64:
                heapq.heappop(heap)
        best = min(best, time.process_time() - started)
    return round(1000 * best, 1)


def _rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(events: Path, now: datetime) -> dict[str, Any]:
    """Replay ``events`` in this process; records/s and peak RSS (call it in a fresh process)."""
    from qualitywatch.replay import replay
    from schemas import default_catalogue

    cat = default_catalogue()
    reference = reference_ms()
    before = _rss_peak_mib()
    written = 0
    with open(os.devnull, "w", encoding="utf-8") as sink:

        def write(w: Any) -> None:
            nonlocal written
            written += 1
            sink.write(w.model_dump_json() + "\n")

        started = time.perf_counter()
        cpu = time.process_time()
        stats = replay(events, write=write, catalogue=cat, now=now)
        cpu = time.process_time() - cpu
        elapsed = time.perf_counter() - started
    lines = stats.total("lines")
    return {
        "lines": lines,
        "accepted": stats.total("accepted"),
        "duplicates": stats.total("duplicate"),
        "rejected": stats.total("rejected"),
        "warnings": written,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "records_per_s": round(lines / elapsed),
        "records_per_cpu_s": round(lines / cpu),
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(_rss_peak_mib(), 1),
        "validation_only_per_cpu_s": _validation_rate(events, cat, now),
        "reference_ms": reference,
    }


def _validation_rate(events: Path, cat: Any, now: datetime, limit: int = 200_000) -> int:
    """Records/CPU-s of validation alone (the first ``limit`` lines, the decoder replay uses): its floor."""
    from schemas.fastpath import SamplingDecoder

    decode = SamplingDecoder(cat, now=now)
    with open(events, "rb") as fh:
        lines = [line for _, line in zip(range(limit), fh, strict=False)]
    cpu = time.process_time()
    for line in lines:
        decode(line)
    return round(len(lines) / (time.process_time() - cpu))


def shares(events: Path, now: datetime) -> dict[str, float]:
    """Where the CPU goes in a replay of ``events`` (cProfile cumulative times, as fractions of the whole).

    The profiler slows small functions more than large ones, so the shares are indicative only.
    """
    import cProfile
    import pstats

    from qualitywatch.replay import replay

    profile = cProfile.Profile(time.process_time)
    profile.enable()
    replay(events, write=lambda w: w.model_dump_json(), now=now)
    profile.disable()
    stats: dict[tuple[str, int, str], Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cum(path_end: str, name: str) -> float:
        return float(sum(v[3] for (f, _, n), v in stats.items() if f.endswith(path_end) and n == name))

    total = cum("qualitywatch/replay.py", "replay")
    validation = cum("schemas/fastpath.py", "__call__")
    engine = cum("detectors/engine.py", "process_sampling") + cum("detectors/engine.py", "flush")
    record = cum("detectors/registry.py", "on_record")
    week = cum("detectors/registry.py", "on_week") + cum("detectors/engine.py", "_downstream")
    return {
        "validation (schemas.fastpath)": validation / total,
        "engine: dedup, order, weeks": (engine - record - week) / total,
        "per-record detectors (enterprise)": record / total,
        "weekly detectors (rate, target, systemic)": week / total,
        "read loop, warnings out": (total - validation - engine) / total,
    }


#: detector families :func:`without` can leave out, for ``--breakdown``
FAMILIES = ("enterprise_repeat", "enterprise_outlier", "weekly")


def without(events: Path, now: datetime, drop: str) -> dict[str, Any]:
    """CPU seconds of a replay of ``events`` with the detector families in ``drop`` (comma-separated)
    left out of the registry: what the rest of the pipeline costs without them."""
    import detectors.engine as engine
    import detectors.registry as registry
    from qualitywatch.replay import replay
    from schemas import default_catalogue

    left_out = set(filter(None, drop.split(",")))
    build_region = registry.build_region_detectors

    def region(*args: Any, **kwargs: Any) -> Any:
        found = build_region(*args, **kwargs)
        found.record = [
            d
            for d in found.record
            if not any(f.removeprefix("enterprise_") in str(d._factory) for f in left_out)
        ]
        if "weekly" in left_out:
            found.week = []
        return found

    registry.build_region_detectors = region  # type: ignore[assignment]
    if "weekly" in left_out:
        registry.build_industry_detectors = lambda *a, **k: registry.DetectorSet()  # type: ignore[assignment]
        engine.SystemicStage.submit = lambda self, cells, items=None: []  # type: ignore[method-assign]
    written = 0

    def write(w: Any) -> None:
        nonlocal written
        written += 1
        w.model_dump_json()

    cpu = time.process_time()
    stats = replay(events, write=write, catalogue=default_catalogue(), now=now)
    cpu = time.process_time() - cpu
    return {"lines": stats.total("lines"), "warnings": written, "cpu_seconds": round(cpu, 2)}


def _child(events: Path, now: datetime, function: str = "measure", *extra: str) -> Any:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = (
        "import json, os, sys; from datetime import datetime; from pathlib import Path;"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]});"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import replay as b;"
        f"print(json.dumps(b.{function}(Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2]),"
        " *sys.argv[3:])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(events), now.isoformat(), *extra],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="size of the large run")
    parser.add_argument("--small", type=int, default=200_000, help="size of the small run")
    parser.add_argument("--per-week", type=int, default=2500, help="sampling results per week")
    parser.add_argument("--enterprises", type=int, default=10000, help="enterprises sampled")
    parser.add_argument("--events", type=Path, help="replay this file instead of generating")
    parser.add_argument("--now", help="validation clock for --events (ISO 8601; default: now)")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep the files")
    parser.add_argument(
        "--profile", action="store_true", help="also show where the CPU goes (smallest input)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="replay each input this many times (fresh processes) and report the fastest, with the "
        "largest peak RSS: on a shared machine the fastest round is the closest to the code's own cost",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also replay the largest input without each detector family: what each costs per record",
    )
    args = parser.parse_args(argv)

    print(f"machine: {_machine()}")
    print(f"date: {datetime.now(UTC).date().isoformat()}")
    runs: list[tuple[str, Path, datetime]] = []
    tmp = tempfile.TemporaryDirectory(prefix="qw-bench-")
    directory = args.keep or Path(tmp.name)
    directory.mkdir(parents=True, exist_ok=True)
    if args.events:
        now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
        runs.append((str(args.events), args.events, now if now.tzinfo else now.replace(tzinfo=UTC)))
    else:
        for n in sorted({args.small, args.records}):
            path = directory / f"events-{n}.jsonl"
            t = time.perf_counter()
            _start, end = generate(path, n, per_week=args.per_week, enterprises=args.enterprises)
            size = path.stat().st_size / 2**20
            print(
                f"generated {n:,} records ({size:.0f} MiB, {(end - _START).days // 7} weeks) "
                f"in {time.perf_counter() - t:.1f} s"
            )
            runs.append((f"{n:,} records", path, end + timedelta(days=1)))
    print(
        f"{'input':>16} {'lines':>10} {'warnings':>8} {'wall s':>7} {'records/s':>10} {'rec/CPU-s':>10} "
        f"{'RSS start':>10} {'peak RSS':>9} {'validation alone':>17} {'ref. loop':>10}"
    )
    for label, path, now in runs:
        rounds = [_child(path, now) for _ in range(max(1, args.rounds))]
        r = max(rounds, key=lambda x: x["records_per_s"])
        r["rss_peak_mib"] = max(x["rss_peak_mib"] for x in rounds)  # the memory figure: the worst
        if len(rounds) > 1:
            each = ", ".join(f"{x['records_per_s']:,} ({x['reference_ms']:.0f} ms)" for x in rounds)
            print(f"{label:>16} rounds (records/s, ref. loop): {each}")
        print(
            f"{label:>16} {r['lines']:>10,} {r['warnings']:>8,} {r['seconds']:>7.1f} "
            f"{r['records_per_s']:>10,} {r['records_per_cpu_s']:>10,} "
            f"{r['rss_before_mib']:>6.0f} MiB {r['rss_peak_mib']:>5.0f} MiB "
            f"{r['validation_only_per_cpu_s']:>11,} rec/s {r['reference_ms']:>7.0f} ms"
        )
    if args.profile:
        label, path, now = runs[0]
        print(f"where the CPU goes (cProfile, {label}):")
        for part, share in _child(path, now, "shares").items():
            print(f"  {part:<44} {share:>6.1%}")
    if args.breakdown:
        label, path, now = runs[-1]
        print(f"CPU per record by part ({label}; each family's cost: the replay with it minus without it):")
        whole = _child(path, now, "without", "")
        bare = _child(path, now, "without", ",".join(FAMILIES))
        lines = whole["lines"]
        pipeline = "read, validate, dedup, order, count weeks"
        print(f"  {pipeline:<44} {1e6 * bare['cpu_seconds'] / lines:>6.1f} µs")
        parts = bare["cpu_seconds"]
        for family in FAMILIES:
            rest = _child(path, now, "without", family)
            cost = whole["cpu_seconds"] - rest["cpu_seconds"]
            parts += cost
            print(f"  {family:<44} {1e6 * cost / lines:>6.1f} µs")
        # the families together cost more than each alone (the warnings they raise, caches, the
        # collector) and single runs vary: what the lines above do not account for
        remainder = "not accounted for above (interaction, noise)"
        print(f"  {remainder:<44} {1e6 * (whole['cpu_seconds'] - parts) / lines:>6.1f} µs")
        print(f"  {'all':<44} {1e6 * whole['cpu_seconds'] / lines:>6.1f} µs")
    tmp.cleanup()


if __name__ == "__main__":
    main()
