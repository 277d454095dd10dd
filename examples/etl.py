"""An ETL flow over a CSV export of orders: extract, transform, load.

    orch run examples/etl.py:etl                  # writes out/summary.csv and out/summary.json
    orch run examples/etl.py:etl                  # again: transform is CACHED
    orch run examples/etl.py:etl -p out_dir=/tmp/report
    python examples/etl.py

- `extract` lands the raw export in a staging folder (in production it would download it);
  it retries three times, waiting 1, 5 and then 10 seconds.
- `transform` totals the shipped orders per region. Its cache key is its inputs plus its
  source code, and a `pathlib.Path` argument is hashed by the file's content, so a second
  run over the same file is answered from the cache for a day. Edit the CSV or the function
  and it runs again.
- `load` writes the summary as CSV and JSON.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import timedelta
from pathlib import Path

from orchlite import flow, task
from orchlite.cache_policies import INPUTS, TASK_SOURCE

DATA = Path(__file__).parent / "data"


@task(retries=3, retry_delay_seconds=[1, 5, 10])
def extract(source: Path, staging: Path) -> Path:
    """Copy the raw export into the staging folder and return where it landed."""
    staging.mkdir(parents=True, exist_ok=True)
    landed = staging / source.name
    shutil.copyfile(source, landed)
    return landed


@task(cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(days=1))
def transform(raw: Path) -> list[dict[str, object]]:
    """Orders, revenue and average order value per region; cancelled orders are skipped."""
    totals: dict[str, list[float]] = {}
    with raw.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["status"] != "shipped":
                continue
            totals.setdefault(row["region"], []).append(float(row["amount"]))
    return [
        {
            "region": region,
            "orders": len(amounts),
            "revenue": round(sum(amounts), 2),
            "average_order": round(sum(amounts) / len(amounts), 2),
        }
        for region, amounts in sorted(totals.items())
    ]


@task
def load(summary: list[dict[str, object]], out_dir: Path) -> Path:
    """Write the summary to `out_dir/summary.csv` and `out_dir/summary.json`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "summary.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["region", "orders", "revenue", "average_order"])
        writer.writeheader()
        writer.writerows(summary)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out_dir


@flow(log_prints=True)
def etl(source: Path = DATA / "orders.csv", out_dir: Path = Path("out")) -> list[dict[str, object]]:
    raw = extract(source, out_dir / "staging")
    summary = transform(raw)
    load(summary, out_dir)
    for line in summary:
        print(f"{line['region']:<6} {line['orders']:>3} orders  {line['revenue']:>10.2f}")
    print(f"wrote {out_dir / 'summary.csv'} and {out_dir / 'summary.json'}")
    return summary


if __name__ == "__main__":
    etl()
