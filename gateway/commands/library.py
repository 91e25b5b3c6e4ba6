"""``pumpgw library check|show|import-csv``: the drug library from the biomedical engineer's desk."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from gateway.druglib import LibraryError, LibraryInvalid, LoadedLibrary, load_library
from gateway.druglib.csv_import import import_csv
from gateway.druglib.load import normalise_name, sha256_of
from gateway.druglib.model import Entry, LimitSet

HELP = """\
Work with drug library files (docs/drug-library.md).

  check FILE            validate a library and print a summary and its SHA-256 (the value
                        to pin in gateway.toml [library] sha256)
  show FILE --care-area X [--drug Y]
                        list the entries of a care area with their limits
  import-csv ENTRIES.csv --care-areas AREAS.csv --name N --version V --released DATE -o OUT.json
                        turn a spreadsheet export into a library file (validated first)
  keygen --name N       create a pharmacy signing key pair (N.key private, N.pub public)
  sign FILE --key N.key [--serial S]
                        sign a released library: writes FILE.sig (Ed25519, detached)
  verify FILE --pubkey N.pub [--signature SIG]
                        check the signature and the library
  publish FILE --broker HOST:PORT [--signature SIG] [--tls ...]
                        publish the signed release retained on {prefix}/library/current

Exit codes: 0 valid, 1 invalid or refused, 2 usage error.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "library",
        help="validate, show and import drug library files",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = p.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    c = lsub.add_parser(
        "check",
        help="validate a library file and summarise it",
        description=(
            "Validate a drug library file (schema and clinical rules, every problem with its line) and print "
            "a summary with the SHA-256 to pin in gateway.toml [library] sha256. Exit 0 valid, 1 invalid."
        ),
    )
    c.add_argument("file", type=Path, help="drug library JSON file")
    c.add_argument("--sha256", default="", help="expected SHA-256 (as pinned in the gateway config)")
    c.set_defaults(handler=_check)
    s = lsub.add_parser(
        "show",
        help="list the entries of a care area",
        description=(
            "List the entries of one care area with every limit (dose, rate, duration, bolus, loading, "
            "concentration), marking limits without a cited source."
        ),
    )
    s.add_argument("file", type=Path, help="drug library JSON file")
    s.add_argument("--care-area", required=True, help="care area id or alias")
    s.add_argument("--drug", default="", help="only this drug (name or alias)")
    s.set_defaults(handler=_show)
    i = lsub.add_parser(
        "import-csv",
        help="build a library JSON from CSV exports",
        description=(
            "Turn the pharmacy's spreadsheet exports (one CSV row per entry, one per care area; columns in "
            "docs/drug-library.md) into a library JSON file, validated like the gateway validates it. Every "
            "problem of both files is listed in one run, with file and line. An existing output file is "
            "kept unless --force is given."
        ),
    )
    i.add_argument("entries", type=Path, help="CSV, one row per entry")
    i.add_argument("--care-areas", type=Path, required=True, help="CSV, one row per care area")
    i.add_argument("--name", required=True, help="library name, e.g. 'St. Example adult ICU'")
    i.add_argument("--version", required=True, dest="lib_version", help="the version pumps will report")
    i.add_argument("--released", required=True, help="release date, YYYY-MM-DD")
    i.add_argument(
        "--status",
        default="draft",
        choices=("draft", "approved", "released"),
        help="default draft: the gateway puts only released libraries in force",
    )
    i.add_argument("-o", "--output", type=Path, required=True, help="library JSON to write")
    i.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    i.set_defaults(handler=_import)
    from gateway.commands import library_release  # keygen, sign, verify, publish

    library_release.register(lsub)


def _refused(exc: LibraryError) -> int:
    if isinstance(exc, LibraryInvalid):
        print(f"{exc.path}: library is invalid ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(f"library refused: {exc}", file=sys.stderr)
    return 1


def _check(args: argparse.Namespace) -> int:
    try:
        loaded = load_library(args.file, expected_sha256=args.sha256)
    except LibraryError as exc:
        return _refused(exc)
    print(summarise(loaded))
    return 0


def summarise(loaded: LoadedLibrary) -> str:
    lib = loaded.library
    lines = [
        f"{loaded.path}: valid drug library",
        f"  name      {lib.name}",
        f"  version   {lib.version}"
        + (f" (pumps may report: {', '.join(lib.pump_library_ids)})" if lib.pump_library_ids else ""),
        f"  status    {lib.status}"
        + ("" if lib.status == "released" else "  -- NOT put in force by the gateway until released"),
        f"  released  {lib.released.isoformat()}",
        f"  sha256    {loaded.sha256}",
        f"  care areas ({len(lib.care_areas)}):",
    ]
    for area in lib.care_areas:
        count = sum(1 for e in lib.entries if area.id in e.care_areas)
        w = area.weight_kg.values() if area.weight_kg else {}
        weight = ", ".join(f"{k} {v}" for k, v in w.items()) or "no weight limits"
        lines.append(f"    {area.id:<12} {count:>5} entries; weight kg: {weight}")
    kinds = Counter(e.kind for e in lib.entries)
    units = Counter(e.dose_unit for e in lib.entries)
    no_hard_max = sum(1 for e in lib.entries if e.dose_limits and e.dose_limits.hard_max is None)
    custom = sum(1 for e in lib.entries if e.concentration and e.concentration.custom)
    unsourced = sum(len(ls.unsourced) for e in lib.entries for ls in _limit_sets(e))
    lines += [
        f"  entries   {len(lib.entries)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})",
        f"  dose units {', '.join(f'{u} {n}' for u, n in units.most_common())}",
        f"  without a hard maximum dose: {no_hard_max}; custom concentrations: {custom}; unsourced limit values: {unsourced}",
    ]
    return "\n".join(lines)


def _limit_sets(e: Entry) -> list[LimitSet]:
    sets = [
        e.dose_limits,
        e.rate_limits_ml_h,
        e.duration_limits_min,
        e.bolus_limits,
        e.bolus_rate_limits,
        e.loading_limits,
    ]
    if e.concentration and e.concentration.limits:
        sets.append(e.concentration.limits)
    sets += [n.limits for n in e.other_limits]
    return [s for s in sets if s is not None]


def _limits_text(limits: LimitSet | None, unit: str) -> str:
    if limits is None:
        return "-"
    shown = " ".join(f"{k.replace('_', ' ')} {v}" for k, v in limits.values().items())
    mark = f" [unsourced: {', '.join(limits.unsourced)}]" if limits.unsourced else ""
    return f"{shown} {unit}{mark}"


def _show(args: argparse.Namespace) -> int:
    try:
        loaded = load_library(args.file)
    except LibraryError as exc:
        return _refused(exc)
    area = loaded.care_area(args.care_area)
    if area is None:
        known = ", ".join(a.id for a in loaded.library.care_areas)
        print(f"care area {args.care_area!r} is not in the library (known: {known})", file=sys.stderr)
        return 1
    entries = [e for e in loaded.library.entries if area.id in e.care_areas]
    if args.drug:
        key = normalise_name(args.drug)
        entries = [e for e in entries if key in {normalise_name(e.drug), *(normalise_name(a) for a in e.aliases)}]
        if not entries:
            print(f"{args.drug!r} is not in care area {area.id}", file=sys.stderr)
            return 1
    print(f"{area.id} ({area.name or 'no name'}), library {loaded.version}, {len(entries)} entries")
    for e in entries:
        c = e.concentration
        conc = (
            "rate only" if c is None else ("custom" if c.custom else f"{c.amount} {c.amount_unit} / {c.volume_ml} mL")
        )
        print(
            f"- {e.drug}{' (' + e.therapy + ')' if e.therapy else ''} [{e.id}, {e.kind}] {conc}, dose unit {e.dose_unit}"
        )
        print(f"    dose: {_limits_text(e.dose_limits, e.dose_unit)}")
        for label, limits, unit in (
            ("rate", e.rate_limits_ml_h, "mL/h"),
            ("duration", e.duration_limits_min, "min"),
            ("bolus", e.bolus_limits, e.bolus_unit or ""),
            ("bolus rate", e.bolus_rate_limits, e.bolus_rate_unit or ""),
            ("loading", e.loading_limits, e.loading_unit or ""),
            ("concentration", c.limits if c else None, (c.limits_unit or "") if c else ""),
        ):
            if limits is not None:
                print(f"    {label}: {_limits_text(limits, unit)}")
        for named in e.other_limits:
            print(f"    {named.name}: {_limits_text(named.limits, named.unit)}")
        if e.advisory:
            print(f"    advisory: {e.advisory}")
    return 0


def _import(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.force:
        print(f"{args.output} exists; not overwritten (give --force to replace it)", file=sys.stderr)
        return 1
    try:
        text, loaded = import_csv(
            args.entries,
            args.care_areas,
            name=args.name,
            version=args.lib_version,
            released=args.released,
            status=args.status,
            out_path=args.output,
        )
    except LibraryError as exc:
        return _refused(exc)
    except OSError as exc:
        print(f"cannot read input: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:
        print(f"cannot read input: not UTF-8 text (byte offset {exc.start}); export the CSV as UTF-8", file=sys.stderr)
        return 1
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {len(loaded.library.entries)} entries, {len(loaded.library.care_areas)} care areas")
    print(f"sha256 {sha256_of(text.encode('utf-8'))}  (pin this in gateway.toml [library] sha256)")
    return 0
