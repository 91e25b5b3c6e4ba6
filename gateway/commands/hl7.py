"""``pumpgw hl7 check FILE|-``: run the IHE PCD conformance checker on stored messages."""

from __future__ import annotations

import argparse
import sys

from gateway.hl7.check import check_message
from gateway.hl7.parse import parse_message, transaction_of

HELP = """\
Check HL7 v2 messages against the IHE PCD (DEV) Technical Framework rules pumpgw
implements: segment order per transaction, MSH-9/12/15/16/19/21, timestamps with UTC
offsets, OBX-4 containment order and uniqueness, device rows, the seven PCD-04 alert
facets and OBR-29, PCD-10 event rows, MDC codes against pumpgw's MDC table.

FILE holds one message; segments may end with CR, LF or CRLF, MLLP frame bytes are
ignored. `-` reads standard input. Every finding is printed as
`FILE: segment N SEG-F: [RULE] explanation`. Exit status 0 when no file has a finding,
1 otherwise, 2 when a file cannot be read.
"""


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("hl7", help="HL7 tools (conformance checker)", description="HL7 tools.")
    hl7_sub = group.add_subparsers(dest="hl7_command", metavar="SUBCOMMAND", required=True)
    check = hl7_sub.add_parser(
        "check", help="check IHE PCD messages (files or - for stdin)",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="message file, or - for standard input")
    check.set_defaults(handler=_handle_check)


def _handle_check(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            raw = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()  # noqa: SIM115
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            return 2
        label = "<stdin>" if name == "-" else name
        findings = check_message(raw)
        if findings:
            status = 1
            for finding in findings:
                print(f"{label}: {finding}")
            print(f"{label}: {len(findings)} finding(s)")
        else:
            transaction = transaction_of(parse_message(raw))
            kind = transaction.name if transaction else "?"
            print(f"{label}: OK ({kind})")
    return status
