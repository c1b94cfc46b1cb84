"""`python -m bench [--quick] [--only PHASE[,PHASE]] [--rates R,R,..] [--profile-rate R] ...`.

`make bench` runs the default phases; `make profile` runs `--only profile`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from bench.report import table
from bench.run import FULL, OPTIONAL_PHASES, PHASES, QUICK, Bench, write
from phoihop_common.logs import configure_logging


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(sorted({float(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of rates: {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


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
    ladder = parser.add_argument_group("latency ladder (phase e2e)")
    ladder.add_argument("--rates", type=_rates, help="offered rates per second, e.g. 5,10,20,50")
    ladder.add_argument("--step-seconds", type=float, help="seconds per rate")
    ladder.add_argument(
        "--stop-p99-s", type=float, help="stop climbing once p99 passes this (default 5)"
    )
    prof = parser.add_argument_group("profile (phase profile, `make profile`)")
    prof.add_argument("--profile-rate", type=float, help="offered rate per second (default 50)")
    prof.add_argument("--profile-seconds", type=int, help="seconds of py-spy recording")
    scale = parser.add_argument_group("scale-out (phase scale: 1 then 2 routing/notify/audit)")
    scale.add_argument("--scale-rate", type=float, help="offered rate per second (default 60)")
    scale.add_argument("--scale-seconds", type=float, help="seconds per run (default 20)")
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = set(phases) - set(PHASES) - set(OPTIONAL_PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    overrides = {
        "ladder_rates": args.rates,
        "ladder_seconds": args.step_seconds,
        "stop_p99_ms": args.stop_p99_s * 1000 if args.stop_p99_s else None,
        "profile_rate": args.profile_rate,
        "profile_seconds": args.profile_seconds,
        "scale_rate": args.scale_rate,
        "scale_seconds": args.scale_seconds,
    }
    sizes = dataclasses.replace(
        QUICK if args.quick else FULL, **{k: v for k, v in overrides.items() if v is not None}
    )
    # the in-process bounds (`bench.bounds`) run service code that logs every event
    configure_logging(service="bench", level="WARNING")
    bench = Bench(sizes=sizes, phases=phases, database_url=args.database_url)
    results = bench.run()
    print(table(results), flush=True)
    path = write(results)
    print(f"\nresults: {path} (and bench/results/latest.json)", flush=True)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
