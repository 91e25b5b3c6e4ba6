"""``pumpgw fleet passwd``: print an argon2id hash for a ``[[web.users]]`` entry's password_hash.

Reads the password twice from the terminal (never echoed, never on the command line where
``ps`` and shell history would keep it), or once from stdin with ``--stdin`` for scripts.
"""

from __future__ import annotations

import argparse
import getpass
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stdin", action="store_true", help="read the password from stdin (one line)")
    p.add_argument("--user", default="NAME", help="user name for the printed TOML snippet")
    p.add_argument(
        "--role",
        default="viewer",
        choices=["viewer", "pharmacy", "admin"],
        help="what the user may do in the web UI (default viewer)",
    )


def main(args: argparse.Namespace) -> int:
    from fleet.web.auth import hash_password

    try:
        if args.stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                print("pumpgw fleet passwd: the passwords differ", file=sys.stderr)
                return 1
    except (EOFError, KeyboardInterrupt):
        print("pumpgw fleet passwd: no password given", file=sys.stderr)
        return 1
    if len(password) < 8:
        print("pumpgw fleet passwd: a password needs at least 8 characters", file=sys.stderr)
        return 1
    digest = hash_password(password)
    print(f'[[web.users]]\nname = "{args.user}"\nrole = "{args.role}"\npassword_hash = "{digest}"')
    return 0
