"""``pumpgw install-files``: put the files a wheel carries where systemd and operators expect them.

A release is installed into its own virtual environment (``/opt/pumpgw``, see
docs/install.md); the unit, the sysusers entry, the example configuration and the
documentation travel inside the wheel and this command copies them out, so no source
checkout is ever needed on a ward host.

Files the package owns (unit, sysusers, schemas, docs) are replaced; files an operator edits
(``/etc/pumpgw/gateway.toml``, ``/etc/pumpgw/drug-library.json``) are only created when absent.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common.resources import config_dir, shipped_dir, shipped_file

HELP = """\
Install the files shipped in the pumpgw wheel under PREFIX (default /):

  PREFIX/etc/systemd/system/pumpgw.service     the unit (uses /opt/pumpgw/bin/pumpgw)
  PREFIX/usr/lib/sysusers.d/pumpgw.conf        the pumpgw system user (systemd-sysusers)
  PREFIX/usr/lib/tmpfiles.d/pumpgw.conf        /etc/pumpgw/credentials, 0700 root (systemd-tmpfiles)
  PREFIX/etc/udev/rules.d/70-pumpgw-serial.rules  serial adapters -> group pumpgw
  PREFIX/etc/pumpgw/gateway.toml               the example ward configuration, if absent
  PREFIX/etc/pumpgw/drug-library.json          the example drug library, if absent
  PREFIX/usr/share/pumpgw/schema/              JSON Schemas of the configuration and payloads
  PREFIX/usr/share/doc/pumpgw/                 the documentation, LICENSE, CHANGELOG

Existing files under /etc/pumpgw are never overwritten. Afterwards run the commands it
prints (create the user, set group ownership, reload systemd). --dry-run only lists.

Exit codes: 0 installed; 1 a file could not be written (named); 2 usage error.
"""


@dataclass(frozen=True)
class Item:
    source: Path
    target: Path  # relative to the prefix
    mode: int
    operator_owned: bool = False  # never overwritten


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install-files",
        help="install the unit, sysusers, example config and docs from the wheel",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--prefix", type=Path, default=Path("/"), help="root to install under (default /)")
    p.add_argument("--dry-run", action="store_true", help="list what would be installed; change nothing")
    p.set_defaults(handler=_handle)


def items() -> list[Item]:
    systemd, docs, config = shipped_dir("systemd"), shipped_dir("docs"), config_dir()
    out = [
        Item(systemd / "pumpgw.service", Path("etc/systemd/system/pumpgw.service"), 0o644),
        Item(systemd / "pumpgw.sysusers.conf", Path("usr/lib/sysusers.d/pumpgw.conf"), 0o644),
        Item(systemd / "pumpgw.tmpfiles.conf", Path("usr/lib/tmpfiles.d/pumpgw.conf"), 0o644),
        Item(systemd / "70-pumpgw-serial.rules", Path("etc/udev/rules.d/70-pumpgw-serial.rules"), 0o644),
        Item(systemd / "pumpgw-network.conf.example", Path("usr/share/doc/pumpgw/examples/pumpgw-network.conf"), 0o644),
        Item(config / "ward-example.toml", Path("etc/pumpgw/gateway.toml"), 0o640, operator_owned=True),
        Item(config / "drug-library.example.json", Path("etc/pumpgw/drug-library.json"), 0o640, operator_owned=True),
        Item(config / "ward-example.toml", Path("usr/share/doc/pumpgw/examples/ward-example.toml"), 0o644),
        Item(config / "demo.toml", Path("usr/share/doc/pumpgw/examples/demo.toml"), 0o644),
    ]
    out += [
        Item(f, Path("usr/share/pumpgw/schema") / f.name, 0o644) for f in sorted((config / "schema").glob("*.json"))
    ]
    out += [Item(f, Path("usr/share/doc/pumpgw") / f.name, 0o644) for f in sorted(docs.glob("*.md"))]
    out += [
        Item(shipped_file(n), Path("usr/share/doc/pumpgw") / n, 0o644)
        for n in ("LICENSE", "CHANGELOG.md", "README.md", "constraints.txt")
    ]
    return out


def _handle(args: argparse.Namespace) -> int:
    prefix: Path = args.prefix
    for item in items():
        target = prefix / item.target
        if item.operator_owned and target.exists():
            print(f"kept       {target} (exists; not overwritten)")
            continue
        if args.dry_run:
            print(f"would copy {target}")
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.source, target)
            target.chmod(item.mode)
        except OSError as exc:
            print(f"pumpgw install-files: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"installed  {target}")
    if not args.dry_run:
        etc = prefix / "etc/pumpgw"
        print(
            "\nnext (as root):\n"
            "  systemd-sysusers                               # creates the pumpgw user\n"
            "  systemd-tmpfiles --create pumpgw.conf          # /etc/pumpgw/credentials for secrets\n"
            "  udevadm control --reload && udevadm trigger --subsystem-match=tty\n"
            f"  chgrp -R pumpgw {etc} && chmod 0750 {etc}\n"
            "  systemctl edit pumpgw                          # the site's IPAddressAllow= (see examples)\n"
            f"  $EDITOR {etc}/gateway.toml                     # your ward; see docs/install.md\n"
            f"  /opt/pumpgw/bin/pumpgw check-config {etc}/gateway.toml\n"
            "  systemctl daemon-reload && systemctl enable --now pumpgw"
        )
    return 0
