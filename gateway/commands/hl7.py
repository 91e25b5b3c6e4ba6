"""``pumpgw hl7 check FILE|-``: run the IHE PCD conformance checker on stored messages."""

from __future__ import annotations

import argparse
import sys

from common.pcd.conformance import check_message
from common.pcd.parse import parse_message, transaction_of

HELP = """\
Check HL7 v2 messages against the IHE PCD (DEV) Technical Framework rules pumpgw
implements: segment order per transaction, MSH-9/12/15/16/19/21, timestamps with UTC
offsets, OBX-4 containment order and uniqueness, device rows, the seven PCD-04 alert
facets and OBR-29, PCD-10 event rows, MDC codes against pumpgw's MDC table.

FILE holds one message; segments may end with CR, LF or CRLF, MLLP frame bytes are
ignored. `-` reads standard input. Every finding is printed as
`FILE: segment N SEG-F: [RULE] explanation`. Exit status 0 when no file has a finding,
1 otherwise, 2 when a file cannot be read.

--hl7apy also runs hl7apy's strict HL7 v2.6 validation (base standard, slow: tens of ms per
message). It knows ORU_R01 but not ORU_R40, and it rejects TF conventions such as an empty
PID-3 for an unknown patient, so its verdicts are printed as [HL7APY] for reading, not as
PCD rules (docs/hl7.md).
"""


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("hl7", help="HL7 tools (conformance checker)", description="HL7 tools.")
    hl7_sub = group.add_subparsers(dest="hl7_command", metavar="SUBCOMMAND", required=True)
    check = hl7_sub.add_parser(
        "check",
        help="check IHE PCD messages (files or - for stdin)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="message file, or - for standard input")
    check.add_argument("--hl7apy", action="store_true", help="also run hl7apy's strict v2.6 validation")
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
        findings = [str(f) for f in check_message(raw)]
        if args.hl7apy:
            problems, note = _hl7apy_problems(raw)
            findings += [f"message: [HL7APY] {problem}" for problem in problems]
            if note:
                print(f"{label}: note: {note}")
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


def _hl7apy_problems(raw: bytes) -> tuple[list[str], str | None]:
    """hl7apy's structural verdict (it stops at the first problem it finds), and a note."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message as hl7apy_parse

    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r").strip("\x0b\x1c\r")
    try:
        message = hl7apy_parse(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
        if getattr(message, "reference", None) is None:  # e.g. ORU_R40: unknown to hl7apy's v2.6 tables
            return [], "hl7apy 1.3.5 has no definition of this message structure; not validated by hl7apy"
        message.validate()
    except HL7apyException as exc:
        return [f"{type(exc).__name__}: {exc}"], None
    return [], None
