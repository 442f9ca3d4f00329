"""``python -m benchmarks.chaos``: runs the scenarios and prints one table."""

from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.chaos.scenarios import FULL_SIZE, SCENARIOS
from benchmarks.chaos.stage import Outcome


def run_one(name: str, n: int, kills: int, seed: int) -> Outcome:
    """One scenario; a crash of the harness itself is reported, not raised."""
    try:
        return SCENARIOS[name](n, kills, random.Random(f"{seed}:{name}"))
    except Exception as exc:  # the table must still come out
        return Outcome(name, n, notes=[f"harness error: {type(exc).__name__}: {exc}"])


def run(
    names: list[str], *, n: int, small: int, kills: int, parallel: int, seed: int
) -> list[Outcome]:
    """Runs ``names`` (``parallel`` at a time) and returns their outcomes in order."""
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [
            pool.submit(run_one, name, n if name in FULL_SIZE else min(n, small), kills, seed)
            for name in names
        ]
        return [f.result() for f in futures]


def table(outcomes: list[Outcome]) -> str:
    """The report: one line per scenario."""
    lines = [f"{'scenario':<26} {'n':>6} {'duplicates':>10} {'lost':>6} {'drain s':>8}  notes"]
    for o in outcomes:
        drain = f"{o.drain_s:8.1f}" if o.drain_s is not None else f"{'never':>8}"
        lines.append(
            f"{o.name:<26} {o.n:>6} {o.duplicates:>10} {o.lost:>6} {drain}  {'; '.join(o.notes)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="subscribers (kill scenarios)")
    parser.add_argument("--small", type=int, default=2_000, help="subscribers (the others)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    started = time.monotonic()
    outcomes = run(
        names, n=args.n, small=args.small, kills=args.kills, parallel=args.parallel, seed=args.seed
    )
    print(table(outcomes))
    print(f"seed {args.seed}, {time.monotonic() - started:.0f} s in all", flush=True)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
