"""The whole exchange path at half load for half an hour: ``govhub bench soak`` as a script.

    python benchmarks/soak.py [--minutes 30] [--quick] [--json benchmarks/results/soak.json]

See ``hub/bench/soak.py`` for what is measured and docs/performance.md for the figures.
"""

from __future__ import annotations

import argparse
import sys

from hub.bench import soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/soak.py")
    soak.add_arguments(parser)
    return soak.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
