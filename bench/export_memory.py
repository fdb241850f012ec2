"""Export memory: peak RSS of `llmtally export` for a tenth of the rows and for all of them.

    python bench/export_memory.py [--rows N] [--database-url URL]

Fills a throwaway database with N request_logs rows (about 600 bytes of content each) spread over
10 days, then runs the export, in a fresh process each time, for one day (N/10 rows) and for all 10
days (N rows), in both formats, to /dev/null. Bounded memory means the peak RSS barely changes while
the rows grow tenfold.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_description, server

from llmtally.db import Database

FILL = """
insert into public.user_profiles (user_id) select 'user_' || u from generate_series(1, 100) u;
insert into public.request_logs (user_profile_id, litellm_call_id, model, provider, prompt_tokens,
    completion_tokens, tokens_used, total_cost, cost_status, messages, response, status, latency_ms,
    created_at)
select 'user_' || (mod(i, 100) + 1), 'call-' || i, 'gpt-4o-mini', 'openai', 100, 50, 150, 0.000123,
       'priced', jsonb_build_array(jsonb_build_object('role', 'user', 'content', repeat('question ', 30))),
       jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('message',
           jsonb_build_object('role', 'assistant', 'content', repeat('answer ', 30))))),
       'success', 200, date '2026-01-01' + mod(i, 10) * interval '1 day' + mod(i, 86400) * interval '1 second'
  from generate_series(1, %(rows)s) i;
"""

CHILD = """
import resource, sys, time
from llmtally.db import Database
from llmtally.export import ExportFilter, export_chunks
import datetime as dt
url, fmt, days = sys.argv[1], sys.argv[2], int(sys.argv[3])
where = ExportFilter(since=dt.date(2026, 1, 1), until=dt.date(2026, 1, 1) + dt.timedelta(days=days))
rows = [0]
start = time.perf_counter()
with Database(url, max_size=1) as db, open("/dev/null", "w") as out:
    for chunk in export_chunks(db, fmt, where, on_rows=lambda n: rows.__setitem__(0, rows[0] + n)):
        out.write(chunk)
print(rows[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    print(machine_description())
    with server(args.database_url) as srv:
        url = srv.create_database("export")
        started = time.perf_counter()
        with Database(url, max_size=1) as db:
            db.execute(FILL.replace("%(rows)s", str(int(args.rows))))
        print(f"{srv.description}\nfilled {args.rows:,} rows in {time.perf_counter() - started:.1f}s\n")
        print(f"{'format':<6} {'rows':>10} {'peak RSS MB':>12} {'seconds':>8} {'rows/s':>10}")
        for fmt in ("csv", "jsonl"):
            for days in (1, 10):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, url, fmt, str(days)], capture_output=True, text=True, check=True
                ).stdout.split()
                rows, rss_kb, seconds = int(out[0]), int(out[1]), float(out[2])
                print(f"{fmt:<6} {rows:>10,} {rss_kb / 1024:>12.1f} {seconds:>8.2f} {rows / seconds:>10,.0f}")


if __name__ == "__main__":
    main()
