"""Detection quality pooled over simulator seeds: simulate -> replay -> evaluate, one table.

    python bench/detection.py --seeds 10 [--first-seed 1] [--years 5] [--keep DIR] [--json FILE]

For each of the N seeds from ``--first-seed`` on (1..N by default; ``--first-seed 11`` for held-out
seeds 11..N+10): simulate into a run directory, replay its events through the detection engine
(``qualitywatch.replay``, the code the stream runs) into ``warnings.jsonl``, then score every run
pooled with ``qualitywatch.evaluation`` next to the EARS and Farrington baselines.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from qualitywatch.evaluation import (
    SimConfig,
    evaluate_runs,
    format_report,
    report_json,
    simulate,
    write_simulation,
)
from schemas import RiskWarning, default_catalogue


def _replay(run: Path, now: datetime) -> int:
    """Warnings of the engine over ``run/events.jsonl`` into ``run/warnings.jsonl``; returns the count."""
    count = 0
    with (run / "warnings.jsonl").open("w", encoding="utf-8") as fh:

        def write(w: RiskWarning) -> None:
            nonlocal count
            count += 1
            fh.write(w.model_dump_json() + "\n")

        try:
            from qualitywatch.replay import replay
        except ImportError:  # the engine directly, in event-time order
            from detectors import DetectionEngine
            from schemas import SamplingResult, validation_context

            cat = default_catalogue()
            ctx = validation_context(cat, now)
            with (run / "events.jsonl").open(encoding="utf-8") as src:
                records = [
                    SamplingResult.model_validate_json(line, context=ctx) for line in src if line.strip()
                ]
            records.sort(key=lambda r: r.sampled_at)
            engine = DetectionEngine(cat)
            for rec in records:
                for w in engine.process_sampling(rec)[1]:
                    write(w)
            for w in engine.flush():
                write(w)
        else:
            replay(run / "events.jsonl", write=write, catalogue=default_catalogue(), now=now)
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="how many seeds to simulate (default 10)")
    ap.add_argument("--first-seed", type=int, default=1, help="the first seed (default 1)")
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse simulated runs already there")
    args = ap.parse_args(argv)
    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="qw-detection-")
        root = Path(tmp.name)
    else:
        root = args.keep
    runs = []
    t0 = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run = root / f"seed-{seed:02d}"
        cfg = SimConfig(seed=seed, years=args.years)
        if not (args.reuse and (run / "truth.json").is_file()):
            sim = simulate(cfg)
            write_simulation(sim, run)
        truth = json.loads((run / "truth.json").read_text(encoding="utf-8"))
        start = datetime.fromisoformat(truth["start"])
        now = start + timedelta(weeks=int(truth["weeks"]) + 1)  # a fixed validation clock: the run's end
        t1 = time.perf_counter()
        n = _replay(run, now)
        print(
            f"seed {seed}: {len(truth['incidents'])} incidents, {n} warnings "
            f"(replay {time.perf_counter() - t1:.1f} s)",
            file=sys.stderr,
        )
        runs.append(run)
    report = evaluate_runs(runs)
    print(format_report(report))
    print()
    print(
        f"command: python bench/detection.py {' '.join(shlex.quote(a) for a in (argv or sys.argv[1:]))}"
        f"  ({time.perf_counter() - t0:.0f} s)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report_json(report), indent=1) + "\n", encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
