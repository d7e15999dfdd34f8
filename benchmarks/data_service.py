"""Data-service lookups and verifications vs a plain aiohttp handler; see
``hub/bench/dataservice.py``.

python benchmarks/data_service.py [--quick] [--json benchmarks/results/data_service.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.bench import dataservice

RESULT = Path(__file__).resolve().parent / "results" / "data_service.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    dataservice.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.json is None:
        args.json = RESULT
    return dataservice.run(args)


if __name__ == "__main__":
    sys.exit(main())
