"""``govhub kek status|rewrap``: the KEK a hub holds, and moving keys to it after a rotation.

Both run where the hub's configuration and KEK files are (they read ``_govhub.keys``
directly), not through the api: only holders of the KEK can unwrap keys.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hub.config import ConfigError, load_config
from hub.controlstate import ControlStateError
from hub.crypto.errors import CryptoError
from hub.crypto.kms import LocalFileKms
from hub.crypto.secrets import rewrap
from hub.state import ControlState


def _kms_and_keys(args: argparse.Namespace) -> tuple[LocalFileKms, ControlState]:
    config = load_config(args.config)
    try:
        kms = LocalFileKms.from_config(config.crypto, create=False)
    except CryptoError as exc:
        raise ConfigError(f"crypto: {exc}") from None
    state = ControlState(config)
    try:
        state.keys.start()
    except ControlStateError as exc:
        raise ConfigError(str(exc)) from None
    return kms, state


def _rewrap(args: argparse.Namespace) -> int:
    kms, state = _kms_and_keys(args)
    try:
        report = rewrap(state.keys, kms, dry_run=args.dry_run)
    finally:
        state.stop()
    doc = {
        "current_kek": report.current_kek,
        "dry_run": args.dry_run,
        "rewrapped": report.rewrapped,
        "already_current": report.already_current,
        "unreadable": [{"key": k, "why": why} for k, why in report.unreadable],
    }
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    # Unreadable rows keep the old KEK needed (or were damaged): not done.
    return 1 if report.unreadable else 0


def _status(args: argparse.Namespace) -> int:
    kms, state = _kms_and_keys(args)
    try:
        under: dict[str, int] = {}
        for _, row in state.keys.items():
            kek = str(row.get("kek_id", "?"))
            under[kek] = under.get(kek, 0) + 1
    finally:
        state.stop()
    print(
        json.dumps(
            {
                "current_kek": kms.kek_id,
                "retired_keks": kms.retired_kek_ids,
                "keys_by_kek": under,
                "not_held": sorted(k for k in under if not kms.holds(k)),
            },
            indent=2,
        )
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("kek", help="the key-encryption key: status and rotation")
    sub = parser.add_subparsers(dest="kek_command", required=True)
    p = sub.add_parser("status", help="current and retired KEKs, and the keys under each")
    p.add_argument("--config", type=Path, default=None, help="the hub's TOML config file")
    p.set_defaults(func=_status)
    p = sub.add_parser(
        "rewrap", help="wrap every key under the current KEK (after a rotation; idempotent)"
    )
    p.add_argument("--config", type=Path, default=None, help="the hub's TOML config file")
    p.add_argument("--dry-run", action="store_true", help="count, write nothing")
    p.set_defaults(func=_rewrap)
