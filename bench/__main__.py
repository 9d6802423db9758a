"""`python -m bench [--quick] [--scenario NAME ...] [--broker KIND ...]`: run, print, save.

Exit status: 0 when every scenario ran and every count was right; 1 when a scenario FAILED
(could not run, timed out); 2 when a message was lost or duplicated.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import machine, profile, report
from bench.brokers import BROKERS, REPO
from bench.runner import run_all
from bench.scenarios import ALL, BY_NAME, TITLES
from bench.scenarios.common import OK, Context, Outcome

RESULTS = REPO / "bench" / "results"
BUDGET_S = {True: 150.0, False: 570.0}  # whole run; `make bench` must stay under 10 minutes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller counts: a ~1 minute smoke run")
    p.add_argument("--scenario", action="append", choices=sorted(BY_NAME), metavar="NAME",
                   help=f"run only these (repeatable): {', '.join(s.name for s in ALL)}")
    p.add_argument("--broker", action="append", choices=BROKERS,
                   help="run only against these brokers (repeatable)")
    p.add_argument("--budget", type=float, help="seconds for the whole run (default: "
                   f"{BUDGET_S[False]:.0f}, quick {BUDGET_S[True]:.0f})")
    p.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    p.add_argument("--profile", action="store_true",
                   help="record edgeq with py-spy during each scenario and print where the "
                        "time goes (figures of a profiled run are perturbed)")
    p.add_argument("--keep-data", action="store_true",
                   help="keep the brokers' data files (only logs and configs are kept otherwise)")
    return p.parse_args(argv)


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; brokers and load processes inherit it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def prune(workdir: Path) -> None:
    """Delete the brokers' stores (a full run leaves hundreds of MB); keep logs and configs."""
    for path in sorted(workdir.rglob("*"), reverse=True):
        if path.is_file() and path.suffix not in (".log", ".conf", ".toml"):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    stem = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    fd_limit = raise_fd_limit()
    busy = machine.busy_fraction()
    if busy > 0.1:
        print(f"warning: the machine is already {busy:.0%} busy; figures will be noisy",
              file=sys.stderr)
    budget = args.budget or BUDGET_S[args.quick]
    ctx = Context(args.quick, args.out / "work" / stem, time.monotonic() + budget,
                  args.out / f"{stem}-profile" if args.profile else None)
    scenarios = [BY_NAME[n] for n in args.scenario] if args.scenario else ALL
    try:
        outcomes = run_all(ctx, scenarios, tuple(args.broker or BROKERS))
    finally:
        if not args.keep_data:
            prune(ctx.workdir)
    rows = report.table_rows(outcomes, TITLES)
    notes = [s.note for s in scenarios if s.note] + [
        "* the busiest load-generator process used >90% of a core: msg/s may be "
        "generator-bound (CPU/msg is not affected)."]
    info = machine.describe() | {"busy before run": f"{busy:.0%}",
                                 "load average at end": machine.load_average(),
                                 "fd limit": str(fd_limit)}
    markdown = "\n".join([report.render_markdown(rows), "", *(f"- {n}" for n in notes), "",
                          *(f"- {k}: {v}" for k, v in info.items())])
    print(report.render_text(rows))
    json_path, md_path = report.write(args.out, stem, {
        "mode": "quick" if args.quick else "full", "started": started.isoformat(),
        "seconds": (datetime.now(UTC) - started).total_seconds(), "machine": info,
        "notes": notes}, outcomes, markdown)
    if ctx.profile_dir is not None:
        print_profiles(ctx.profile_dir)
    print(f"\nresults: {md_path.relative_to(REPO) if md_path.is_relative_to(REPO) else md_path}"
          f" and {json_path.name}")
    return exit_status(outcomes)


def print_profiles(directory: Path) -> None:
    for raw in sorted(directory.glob("*-edgeq.txt")):
        text = profile.summarize(raw)
        raw.with_suffix(".summary").write_text(text + "\n")
        print("\n" + text)


def exit_status(outcomes: list[Outcome]) -> int:
    wrong = [o for o in outcomes if o.correctness_error]
    failed = [o for o in outcomes if o.status not in (OK, "n/a")]
    for o in wrong:
        print(f"BENCH CORRECTNESS FAILURE: {o.broker} {o.scenario}: {o.reason}", file=sys.stderr)
    for o in failed:
        if not o.correctness_error:
            print(f"BENCH SCENARIO FAILED: {o.broker} {o.scenario}: {o.reason}", file=sys.stderr)
    return 2 if wrong else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
