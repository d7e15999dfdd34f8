"""10,000 subscriber streams on one gateway process; see ``hub/bench/gateway.py``.

python benchmarks/gateway_scale.py [--quick] [--json benchmarks/results/gateway_scale.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.bench import gateway

RESULT = Path(__file__).resolve().parent / "results" / "gateway_scale.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gateway.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.json is None:
        args.json = RESULT
    return gateway.run(args)


if __name__ == "__main__":
    sys.exit(main())
