"""The router against a raw consume→produce loop: ``govhub bench exchange`` as a script.

    python benchmarks/exchange.py [--quick] [--json benchmarks/results/exchange.json]

See ``hub/bench/exchange.py`` for what is measured and docs/performance.md for the figures.
"""

from __future__ import annotations

import argparse
import sys

from hub.bench import exchange


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/exchange.py")
    exchange.add_arguments(parser)
    return exchange.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
