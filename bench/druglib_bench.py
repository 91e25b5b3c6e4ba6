"""Drug-library checker throughput against a real-size library (issue 7, item 7).

Generates a 1,500-entry library (Alaris' per-profile maximum, reference drug-library.md §1.2)
over 3 care areas, then measures in the same run:

* verdicts/s of ``evaluate`` on programs reporting a dose, and on programs reporting only a rate
  (dose back-calculated with a tolerance);
* the cost of the library's lookup (``LoadedLibrary.candidates``: name normalisation + index)
  against a plain ``dict`` lookup with pre-normalised keys, as a ratio;
* load + validate time of the file.

Figures are ratios and rates from this machine and this run only; nothing here is asserted.
Run: /work/venv/bin/python bench/druglib_bench.py [--entries 1500] [--programs 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.model import Quantity  # noqa: E402
from gateway.druglib import ProgramUnderCheck, evaluate, load_library  # noqa: E402

UNITS = [
    ("ug/kg/min", "mg", True),
    ("ug/min", "mg", False),
    ("mg/h", "mg", False),
    ("[iU]/h", "[iU]", False),
    ("[iU]/kg/h", "[iU]", True),
    ("m[iU]/min", "[iU]", False),
    ("meq/h", "meq", False),
    ("g/h", "g", False),
]
AREAS = ["ICU", "MED-SURG", "OB"]


def generate(n: int, rng: random.Random) -> dict:
    entries = []
    for i in range(n):
        unit, amount_unit, _ = UNITS[i % len(UNITS)]
        soft_max = Decimal(rng.randint(5, 500))
        entries.append(
            {
                "id": f"e{i:05d}",
                "drug": f"Drug {i:05d}",
                "aliases": [f"D{i:05d}"],
                "care_areas": [AREAS[i % 3]],
                "kind": "continuous",
                "concentration": {
                    "amount": rng.randint(1, 500),
                    "amount_unit": amount_unit,
                    "volume_ml": rng.choice([50, 100, 250, 500]),
                },
                "dose_unit": unit,
                "dose_limits": {
                    "soft_min": str(soft_max / 100),
                    "soft_max": str(soft_max),
                    "hard_max": str(soft_max * 2),
                },
            }
        )
    return {
        "format": "pumpgw-drug-library/1",
        "name": "bench",
        "version": "b1",
        "released": "2024-01-01",
        "status": "released",
        "care_areas": [
            {"id": a, "weight_kg": {"soft_min": 30, "soft_max": 200, "hard_max": 500}, "max_rate_ml_h": 999}
            for a in AREAS
        ],
        "entries": entries,
    }


def programs(data: dict, count: int, rng: random.Random, by_rate: bool) -> list[ProgramUnderCheck]:
    out = []
    for _ in range(count):
        e = rng.choice(data["entries"])
        c = e["concentration"]
        conc = Quantity(Decimal(c["amount"]) / Decimal(c["volume_ml"]), f"{c['amount_unit']}/mL")
        dose = Decimal(e["dose_limits"]["soft_max"]) * Decimal(rng.randint(1, 250)) / 100
        field = (
            {"rate": Quantity(Decimal(rng.randint(1, 9000)) / 10, "mL/h")}
            if by_rate
            else {"dose_rate": Quantity(dose, e["dose_unit"])}
        )
        out.append(
            ProgramUnderCheck(
                drug=rng.choice([e["drug"], e["aliases"][0].lower()]),
                care_area=e["care_areas"][0],
                concentration=conc,
                patient_weight=Quantity(Decimal(rng.randint(40, 120)), "kg"),
                pump_library_version="b1",
                **field,
            )
        )
    return out


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1500)
    parser.add_argument("--programs", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = generate(args.entries, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-library.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        load_s = best_of(3, lambda: load_library(path))
        lib = load_library(path)
    by_dose = programs(data, args.programs, rng, by_rate=False)
    by_rate = programs(data, args.programs, rng, by_rate=True)

    dose_s = best_of(3, lambda: [evaluate(lib, p) for p in by_dose])
    rate_s = best_of(3, lambda: [evaluate(lib, p) for p in by_rate])

    keys = [(lib.care_area(p.care_area).id, p.drug) for p in by_dose]
    baseline = {(area, name): v for (area, name), v in lib._entries.items()}  # same keys, pre-normalised
    pre_normalised = [(area, " ".join(drug.split()).casefold()) for area, drug in keys]
    repeat = 20
    dict_s = best_of(5, lambda: [baseline.get(k) for _ in range(repeat) for k in pre_normalised])
    lookup_s = best_of(5, lambda: [lib.candidates(a, d) for _ in range(repeat) for a, d in keys])
    n_lookups = repeat * len(keys)

    print(f"library: {args.entries} entries, {len(AREAS)} care areas; programs: {args.programs} per kind")
    print(f"load + validate:            {load_s * 1000:8.1f} ms")
    print(
        f"evaluate, dose reported:    {args.programs / dose_s:10.0f} verdict sets/s ({dose_s / args.programs * 1e6:6.1f} us each)"
    )
    print(
        f"evaluate, rate only:        {args.programs / rate_s:10.0f} verdict sets/s ({rate_s / args.programs * 1e6:6.1f} us each)"
    )
    print(f"plain dict lookup:          {dict_s / n_lookups * 1e9:8.0f} ns (baseline)")
    print(
        f"library lookup (normalise): {lookup_s / n_lookups * 1e9:8.0f} ns = {lookup_s / dict_s:5.1f}x the plain dict"
    )
    print(f"one evaluate (dose):        {dose_s / args.programs / (dict_s / n_lookups):8.0f}x a plain dict lookup")


if __name__ == "__main__":
    main()
