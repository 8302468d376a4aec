"""Ingest throughput over real HTTP: single-record POSTs/s and bulk-import rows/s.

    python bench/ingest.py                                # 20,000 POSTs, 16 connections; 200,000-row CSV
    python bench/ingest.py --posts 5000 --rows 50000 --connections 8
    python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Starts a real uvicorn server (one process, httptools + uvloop, loopback, access log off) with the
ingest router over a fresh store (a temporary SQLite file unless ``--database-url``; on PostgreSQL a
scratch schema that is dropped after), the relay off (relaying is measured by the stream benchmarks).
Large imports are validated on ``--import-workers`` worker processes of the server (default: one per
CPU, at most four; 0 validates in the server process). Then:

1. single: a minimal asyncio HTTP/1.1 client with ``--connections`` keep-alive connections POSTs ``--posts``
   distinct sampling results to ``/api/v1/sampling-results``; records/s = posts / wall time, every
   response must be 201;
2. bulk: a warm-up import of 5,000 rows starts the server's validation workers (a long-running server
   starts them once); then one CSV of ``--rows`` rows with the Chinese lab-template headers is uploaded
   to ``/api/v1/imports?kind=sampling``; rows/s = rows / wall time of the request (upload, parse,
   validate, commit, the per-row response), every row must be accepted.

On a shared machine the wall-clock figures depend on the CPU the other jobs leave: each phase also
prints the load average and the CPU time the server and its workers used, and the throughput per
CPU-second of the server (what one core would sustain; the client's CPU is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

import httpx

TOKEN = "bench-token"


def _uscc() -> list[str]:
    from schemas import uscc_check_char

    out = []
    for n in range(16):
        first = f"916530{n:02d}MA7B{n:04d}"[:17].ljust(17, "1")
        out.append(first + uscc_check_char(first))
    return out


def _record(n: int, codes: list[str]) -> dict[str, object]:
    failed = n % 10 == 0
    return {
        "id": f"B-{n}",
        "sampled_at": f"2026-02-{1 + n % 27:02d}T10:00:00+08:00",
        "region": ("653001", "653022", "653023", "653024")[n % 4],
        "industry": ("textiles", "food_processing", "building_materials")[n % 3],
        "product": "cotton T-shirt",
        "enterprise_id": codes[n % len(codes)],
        "passed": not failed,
        "failed_items": ["formaldehyde"] if failed else [],
        "inspector_id": f"insp-{n % 7}",
    }


def _csv(rows: int, codes: list[str], prefix: str = "L") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "抽样编号",
            "抽样日期",
            "区县",
            "行业",
            "产品名称",
            "统一社会信用代码",
            "检验结论",
            "不合格项目",
            "抽样人员",
            "检验机构",
        ]
    )
    counties = ("阿图什市", "阿克陶县", "阿合奇县", "乌恰县")
    industries = ("纺织服装", "食品加工", "建材")
    for n in range(rows):
        failed = n % 10 == 0
        w.writerow(
            [
                f"{prefix}-{n}",
                f"2026-02-{1 + n % 27:02d}",
                counties[n % 4],
                industries[n % 3],
                "棉T恤",
                codes[n % len(codes)],
                "不合格" if failed else "合格",
                "甲醛、pH值" if failed else "",
                f"insp-{n % 7}",
                "lab-1",
            ]
        )
    return buf.getvalue().encode("utf-8")


def serve(port: int, database_url: str, import_workers: int | None) -> None:
    """The server side (a child process): the ingest router on uvicorn."""
    import uvicorn
    from fastapi import FastAPI

    from stream.ingest import Principal, create_ingest_router, open_store, static_verifier

    app = FastAPI()
    app.include_router(
        create_ingest_router(
            session_factory=open_store(database_url),
            verify=static_verifier({TOKEN: Principal("bench", "inspector")}),
            max_batch_rows=1_000_000,
            max_upload_bytes=512 * 1024 * 1024,
            import_workers=import_workers,
        )
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (the validation workers), from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
        except OSError:
            continue
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def _import(base: str, content: bytes) -> tuple[float, dict[str, object], int]:
    t0 = time.perf_counter()
    r = httpx.post(
        f"{base}/api/v1/imports",
        params={"kind": "sampling"},
        files={"file": ("lab.csv", content, "text/csv")},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=600,
    )
    elapsed = time.perf_counter() - t0
    return elapsed, r.json(), r.status_code


async def _post_worker(port: int, requests: list[bytes], bad: list[str]) -> None:
    """One keep-alive HTTP/1.1 connection; each request goes out in a single write (TCP_NODELAY)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for request in requests:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 201"):
            bad.append(f"{head.splitlines()[0].decode()} {body[:200].decode()}")
    writer.close()
    await writer.wait_closed()


async def _posts(port: int, total: int, connections: int, codes: list[str]) -> float:
    """POST ``total`` distinct records over ``connections`` connections; the wall time in seconds.

    A minimal asyncio HTTP/1.1 client rather than httpx: httpx writes headers and body separately,
    which meets the server's delayed ACK (about 40 ms per request per connection) and would measure
    the client, not the server.
    """
    requests = []
    for n in range(total):
        body = json.dumps(_record(n, codes)).encode()
        requests.append(
            b"POST /api/v1/sampling-results HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    bad: list[str] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_post_worker(port, requests[k::connections], bad) for k in range(connections)))
    elapsed = time.perf_counter() - t0
    if bad:
        raise SystemExit(f"{len(bad)} POSTs were not accepted, first: {bad[0]}")
    return elapsed


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited early")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("the server did not start within 30 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=20_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--database-url", default=None)
    ap.add_argument(
        "--import-workers", type=int, default=None, help="validation workers of the server (default: auto)"
    )
    ap.add_argument("--serve", nargs=3, metavar=("PORT", "URL", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], None if args.serve[2] == "auto" else int(args.serve[2]))
        return

    from stream.broker import free_port

    codes = _uscc()
    port = free_port()
    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/ingest.db"
        if url.startswith("postgresql"):
            import sqlalchemy as sa

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with sa.create_engine(url).begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        workers = "auto" if args.import_workers is None else str(args.import_workers)
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), url, workers])
        try:
            _wait(port, proc)
            base = f"http://127.0.0.1:{port}"
            single_load = _load()
            cpu0 = _cpu_seconds(proc.pid)
            single_s = asyncio.run(_posts(port, args.posts, args.connections, codes))
            single_cpu = _cpu_seconds(proc.pid) - cpu0
            _, body, status = _import(base, _csv(5000, codes, prefix="W"))
            if status != 200 or body["accepted"] != 5000:
                raise SystemExit(f"warm-up import: {status} {str(body)[:300]}")
            content = _csv(args.rows, codes)
            bulk_load = _load()
            cpu0 = _cpu_seconds(proc.pid)
            bulk_s, body, status = _import(base, content)
            bulk_cpu = _cpu_seconds(proc.pid) - cpu0
            if status != 200 or body["accepted"] != args.rows:
                raise SystemExit(f"import: {status} {str(body)[:300]}")
        finally:
            proc.terminate()
            proc.wait(30)
            if schema is not None:
                import sqlalchemy as sa

                with sa.create_engine(args.database_url).begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "database": "postgresql" if schema else "sqlite",
        "single_posts": args.posts,
        "connections": args.connections,
        "single_records_per_s": round(args.posts / single_s),
        "single_load_avg": single_load,
        "single_server_cpu_s": round(single_cpu, 2),
        "single_records_per_server_cpu_s": round(args.posts / single_cpu) if single_cpu else None,
        "bulk_rows": args.rows,
        "bulk_csv_bytes": len(content),
        "import_workers": workers,
        "bulk_rows_per_s": round(args.rows / bulk_s),
        "bulk_load_avg": bulk_load,
        "bulk_server_cpu_s": round(bulk_cpu, 2),
        "bulk_rows_per_server_cpu_s": round(args.rows / bulk_cpu) if bulk_cpu else None,
    }
    print(
        f"single-record POST: {result['single_records_per_s']:,} records/s "
        f"({args.posts:,} POSTs, {args.connections} connections, {single_s:.2f} s, load {single_load}; "
        f"server CPU {single_cpu:.1f} s = {result['single_records_per_server_cpu_s']:,} records per CPU-s)"
    )
    print(
        f"bulk import (CSV):  {result['bulk_rows_per_s']:,} rows/s ({args.rows:,} rows, {bulk_s:.2f} s, "
        f"load {bulk_load}; server + workers CPU {bulk_cpu:.1f} s = "
        f"{result['bulk_rows_per_server_cpu_s']:,} rows per CPU-s)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
