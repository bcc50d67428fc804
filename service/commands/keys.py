"""``avagent keys``: create, list and revoke API keys (only their hashes are stored)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="make a key and print it once")
    c.add_argument("--name", required=True, help="who or what uses the key")
    c.add_argument("--rate-per-minute", type=int, default=None,
                   help="requests per minute (default: AVAGENT_RATE_LIMIT_PER_MINUTE)")
    c.add_argument("--max-concurrent", type=int, default=None,
                   help="queued+running jobs at once (default: AVAGENT_MAX_CONCURRENT_JOBS)")
    sub.add_parser("list", help="list keys (ids and names, never the keys)")
    r = sub.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("key_id")


def run(args: argparse.Namespace) -> int:
    from avagent.errors import ParameterError
    from avagent.service.auth import create_key
    from avagent.service.jobs import JobStore
    from avagent.service.settings import get_settings

    store = JobStore.from_settings(get_settings())
    if args.keys_command == "create":
        for name in ("rate_per_minute", "max_concurrent"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ParameterError(f"--{name.replace('_', '-')}={value} must be >= 1")
        key, record = create_key(store, args.name, rate_per_minute=args.rate_per_minute,
                                 max_concurrent=args.max_concurrent)
        print(key)
        import sys

        print(f"key id {record.id} ({record.name}); store the key now, it is not kept",
              file=sys.stderr)
        return 0
    if args.keys_command == "list":
        for k in store.list_keys():
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            print(f"{k.id}\t{k.name}\t{state}\tcreated {k.created_at:%Y-%m-%d %H:%M}")
        return 0
    if not store.revoke_key(args.key_id):
        raise ParameterError(f"key id {args.key_id!r} is unknown or already revoked")
    print(f"revoked {args.key_id}")
    return 0
