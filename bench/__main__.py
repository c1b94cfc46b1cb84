"""`python -m bench [--quick] [--only PHASE[,PHASE]] [--database-url URL]` (`make bench`)."""

from __future__ import annotations

import argparse
import sys

from bench.report import table
from bench.run import FULL, OPTIONAL_PHASES, PHASES, QUICK, Bench, write


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases out of {', '.join(PHASES + OPTIONAL_PHASES)} "
        f"(the ceiling always runs; {', '.join(OPTIONAL_PHASES)} only when named)",
    )
    parser.add_argument("--database-url", default=None, help="default: SQLite files per service")
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = set(phases) - set(PHASES) - set(OPTIONAL_PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    bench = Bench(
        sizes=QUICK if args.quick else FULL, phases=phases, database_url=args.database_url
    )
    results = bench.run()
    print(table(results), flush=True)
    path = write(results)
    print(f"\nresults: {path} (and bench/results/latest.json)", flush=True)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
