"""Every benchmark in one run, with plots and a summary: ``govhub bench all`` as a script.

    python benchmarks/all.py [--quick] --out benchmarks/results/quick-<date>

See ``hub/bench/all.py`` for the scenarios and ``benchmarks/README.md`` for what each
measures against which baseline.
"""

from __future__ import annotations

import argparse
import sys

from hub.bench import all as bench_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/all.py")
    bench_all.add_arguments(parser)
    return bench_all.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
