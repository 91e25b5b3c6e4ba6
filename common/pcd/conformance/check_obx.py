"""OBX, containment-tree, alert (PCD-04) and event (PCD-10) rules of the checker.

Sources: TF2-R10 App. A and B.8 (OBX rows, OBX-4 dictionary order), B.7/B.7.1 and B.8.5
(PCD-04 facets and OBR-29), App. M (PCD-10 event rows). Summarised in ihe-pcd.md §4, §7, §8.
"""

from __future__ import annotations

from common.pcd import mdc
from common.pcd.conformance.findings import DTM_RE, Findings
from common.pcd.parse import Message, Segment, Transaction, obx4_key, read_alerts

_RESULTS = {"PCD-01", "PCD-04", "PCD-10", "PCD-05"}
_OBX11 = set("CDFPRSUWX")
_X_FLAGS = {"INV", "NAV", "BUSY"}  # Table B.8.5-6: metric rows with these flags take X
_PATIENT_CLASS = set("EIOPRBU")


def check_observations(message: Message, transaction: Transaction, out: Findings) -> None:
    obxs = message.named("OBX")
    piv = transaction.name.startswith("PCD-03")
    for seg in obxs:
        if not seg.field(4):
            if not piv:  # PIV (PCD-03) OBX-4 is RE: "required but may be empty" (§3.3.4.4)
                out.add("OBX-4", seg, 4, "OBX-4 (containment sub-id) is required (TF2-R10 B.8 OBX-4)")
        elif obx4_key(seg.field(4)) is None:
            out.add("OBX-4", seg, 4, f"{seg.field(4)!r} is not <MDS>.<VMD>.<CHAN>.<METRIC>[.<FACET>[.<SUB>]]")
        if not seg.components(3)[2:3] or not seg.component(3, 3):
            out.add("OBX-3", seg, 3, f"{seg.field(3)!r} lacks its coding system (code^REFID^MDC, A.1)")
    if piv:
        _check_piv_steps(message, out)
    if transaction.name not in _RESULTS:
        return
    for pv1 in message.named("PV1"):
        if pv1.field(2) not in _PATIENT_CLASS:
            out.add("PV1-2", pv1, 2, f"patient class {pv1.field(2)!r} not in E, I, O, P, R, B, U")
    for obr in message.named("OBR"):
        if not obr.field(3):
            out.add("OBR-3", obr, 3, "filler order number is required (B.7 OBR-3)")
    for expected, seg in enumerate(obxs, start=1):
        if seg.field(1) != str(expected):
            out.add(
                "OBX-1", seg, 1, f"set id must run 1..n through the message: expected {expected}, got {seg.field(1)!r}"
            )
        _check_row(seg, transaction, out)
    for group in _obr_groups(message):
        _check_order(group, out)
    if transaction.name == "PCD-04":
        _check_alerts(message, out)
    if transaction.name == "PCD-10":
        _check_event_rows(message, out)


def _check_row(seg: Segment, transaction: Transaction, out: Findings) -> None:
    key = obx4_key(seg.field(4))
    vt, value, status = seg.field(2), seg.raw_field(5), seg.field(11)
    flags = {rep[0] for rep in seg.repetitions(8)}
    device = key is not None and len(key) == 4 and key[3] == 0
    if not status:
        shifted = f" ({seg.field(10)!r} sits in OBX-10: one field separator missing?)" if seg.field(10) else ""
        out.add("OBX-11", seg, 11, "observation result status is required" + shifted)
    elif status not in _OBX11:
        out.add("OBX-11", seg, 11, f"{status!r} is not in Table B.8.5-11")
    if device:
        if value:
            out.add("DEVICE-ROW", seg, 5, "device-related rows (OBX-4 ending in .0) carry no OBX-5 (B.8)")
        if status and status != "X" and not seg.field(7):
            out.add(
                "DEVICE-ROW",
                seg,
                11,
                f"device-related row needs OBX-11 'X' unless OBX-7 gives its range, got {status!r}",
            )
        return
    if status == "X" and value and not flags & _X_FLAGS:
        out.add(
            "METRIC-STATUS-X",
            seg,
            11,
            "a metric row with a value takes OBX-11 'X' only when OBX-8 flags INV, NAV or BUSY (Table B.8.5-6)",
        )
    if status and status != "X" and not vt:
        out.add("OBX-2", seg, 2, "value type is required when OBX-11 is not 'X' (B.8 OBX-2)")
    if transaction.name == "PCD-04" and status and status != "F":
        out.add("PCD04-OBX-11", seg, 11, f"in PCD-04 the only possible OBX-11 is 'F' (B.8.6), got {status!r}")
    if vt == "NM" and value:
        text = seg.field(5)
        try:
            float(text)
        except ValueError:
            out.add("OBX-5", seg, 5, f"NM value {text!r} is not a number")
        if not seg.field(6):
            out.add("OBX-6", seg, 6, "units are required for a numeric value (B.8 OBX-6)")
    if vt == "CWE" and value:
        c = seg.components(5)
        if c[0] and not (c[1:2] and c[1]) and not (c[2:3] and c[2]):
            out.add(
                "CWE-TEXT",
                seg,
                5,
                f"CWE value {c[0]!r} has neither text nor coding system (plain text in a coded field)",
            )
    if seg.field(13) and not seg.field(14) and DTM_RE.match(seg.field(13)):
        out.add("OBX-13-SHIFTED", seg, 13, "a timestamp in OBX-13 with OBX-14 empty: shifted one field left")


def _obr_groups(message: Message) -> list[list[Segment]]:
    groups: list[list[Segment]] = []
    for seg in message.segments:
        if seg.name == "OBR":
            groups.append([])
        elif seg.name == "OBX" and groups:
            groups[-1].append(seg)
    return groups


def _check_order(group: list[Segment], out: Findings) -> None:
    """Unique OBX-4 per OBR group, in dictionary order or the B.8.4 variation."""
    keyed = [(k, s) for s in group if (k := obx4_key(s.field(4))) is not None]
    seen: dict[tuple[int, ...], Segment] = {}
    for key, seg in keyed:
        if key in seen:
            out.add("OBX-4-UNIQUE", seg, 4, f"{seg.field(4)} repeats segment {seen[key].number}")
        seen.setdefault(key, seg)
    keys = [k for k, _ in keyed]
    if keys == sorted(keys):
        return
    device = [k for k in keys if len(k) == 4 and k[3] == 0]
    metrics = [k for k in keys if not (len(k) == 4 and k[3] == 0)]
    if keys == device + metrics and device == sorted(device) and metrics == sorted(metrics, key=str):
        return  # B.8.4 "acceptable variation": device rows first, then metrics
    for (prev, _), (key, seg) in zip(keyed, keyed[1:], strict=False):
        if key < prev:
            out.add(
                "OBX-4-ORDER",
                seg,
                4,
                f"{seg.field(4)} after {'.'.join(map(str, prev))}: not in dictionary order (B.8.4)",
            )


def _check_alerts(message: Message, out: Findings) -> None:
    for obr in message.named("OBR"):
        code = obr.components(4)
        if code[:2] != ["196616", "MDC_EVT_ALARM"]:
            out.add("PCD04-OBR-4", obr, 4, f"OBR-4 must be 196616^MDC_EVT_ALARM^MDC (B.7.1), got {obr.field(4)!r}")
    alerts = read_alerts(message)
    prefixes = {a.prefix for a in alerts}
    for seg in message.named("OBX"):
        key = obx4_key(seg.field(4))
        if key is not None and len(key) == 5 and key[:4] not in prefixes:
            out.add(
                "PCD04-FACET-ORPHAN",
                seg,
                4,
                f"facet row {seg.field(4)} belongs to no alert (no facet 1 at {'.'.join(map(str, key[:4]))})",
            )
    first_obr = next(iter(message.named("OBR")), None)
    for alert in alerts:
        event = alert.facets[1]
        missing = sorted(set(mdc.FACET_REFIDS) - set(alert.facets))
        if alert.priority_from_obx8 and {6, 7} & set(missing):
            out.add(
                "PCD04-FACET-OBX8",
                event,
                8,
                "priority/type only in OBX-8 (deprecated, B.8.5): facet rows "
                "6 (MDC_ATTR_ALARM_PRIORITY) and 7 (MDC_ATTR_ALERT_TYPE) are required",
            )
            missing = [f for f in missing if f not in (6, 7)]
        if missing:
            out.add(
                "PCD04-FACET-MISSING",
                event,
                4,
                f"alert {'.'.join(map(str, alert.prefix))} lacks facet(s) "
                f"{', '.join(map(str, missing))} (all seven are R, B.8.5)",
            )
        for number, seg in alert.facets.items():
            refid = mdc.FACET_REFIDS.get(number)
            if refid and number != 2 and seg.component(3, 2) != refid:
                out.add("PCD04-FACET-CODE", seg, 3, f"facet {number} is {refid}, got {seg.field(3)!r}")
        for value, allowed, facet in (
            (alert.phase, mdc.EVENT_PHASES, 3),
            (alert.state, mdc.ALARM_STATES, 4),
            (alert.priority, mdc.PRIORITIES, 6),
            (alert.alert_type, mdc.ALERT_TYPES, 7),
        ):
            if value and value not in allowed and facet in alert.facets:
                out.add("PCD04-FACET-VALUE", alert.facets[facet], 5, f"{value!r} not in {sorted(allowed)}")
        if (
            alert.alert_type in ("ST", "SA")
            and alert.event_code[:1] != ["196616"]
            and alert.event_code[1:2] != ["MDC_EVT_ALARM"]
        ):
            out.add(
                "PCD04-EVENT-CODE",
                event,
                3,
                "technical alarms and advisories identify the event as "
                f"196616^MDC_EVT_ALARM^MDC with the specific code in OBX-5 (B.8.5), got {event.field(3)!r}",
            )
        source = alert.facets.get(2)
        if source is not None and source.component(3, 1).isdigit() and alert.prefix[3] == int(source.component(3, 1)):
            out.add(
                "PCD04-LEGACY-FACET-ID",
                event,
                4,
                f"OBX-4 {event.field(4)} puts the source metric's code in the metric position (legacy facet sub-id)",
            )
        later_phase = alert.phase in mdc.EVENT_PHASES and alert.phase not in mdc.ONSET_PHASES
        if first_obr is not None and later_phase and not first_obr.component(29, 2):
            out.add(
                "PCD04-OBR-29",
                first_obr,
                29,
                f"phase {alert.phase!r} needs OBR-29 pointing to the onset's OBR-3 (B.7.1, CP-151)",
            )


def _check_event_rows(message: Message, out: Findings) -> None:
    """PCD-10: exactly one MDC_ATTR_EVT_COND and one MDC_ATTR_EVT_SOURCE at MDS level (M.1.1)."""
    obxs = message.named("OBX")
    subs = {s.field(4) for s in obxs}
    for refid in ("MDC_ATTR_EVT_COND", "MDC_ATTR_EVT_SOURCE"):
        rows = [s for s in obxs if s.component(3, 2) == refid]
        if len(rows) != 1:
            out.add(
                "PCD10-EVENT",
                rows[1] if len(rows) > 1 else None,
                3,
                f"PCD-10 carries exactly one {refid} row, found {len(rows)}",
            )
            continue
        key = obx4_key(rows[0].field(4))
        if key is None or key[1:4] != (0, 0, key[3]) or key[3] == 0:
            out.add("PCD10-EVENT", rows[0], 4, f"{refid} belongs at MDS level (1.0.0.n)")
        if refid == "MDC_ATTR_EVT_SOURCE" and rows[0].field(5) not in subs:
            out.add("PCD10-EVENT", rows[0], 5, f"event source {rows[0].field(5)!r} is no OBX-4 of this message")


def _check_piv_steps(message: Message, out: Findings) -> None:
    """PCD-03: one {RXG [TQ1] RXR OBX...} group per step, RXG-1 = step 1..n (§3.3.4.4.10.3);
    OBX-4 unique within a step; a MDC_INFUS_TOTAL_NUM_STEPS row equals the number of steps."""
    groups: list[tuple[Segment, list[Segment]]] = []
    for seg in message.segments:
        if seg.name == "RXG":
            groups.append((seg, []))
        elif seg.name == "OBX" and groups:
            groups[-1][1].append(seg)
    for expected, (rxg, obxs) in enumerate(groups, start=1):
        if rxg.field(1) != str(expected):
            out.add("RXG-1", rxg, 1, f"give sub-id counts the steps 1..n: expected {expected}, got {rxg.field(1)!r}")
        seen: dict[str, Segment] = {}
        for seg in obxs:
            sub = seg.field(4)
            if sub and sub in seen:
                out.add("OBX-4-UNIQUE", seg, 4, f"{sub} repeats segment {seen[sub].number} in step {expected}")
            seen.setdefault(sub, seg)
    for seg in message.named("OBX"):
        if seg.component(3, 2) == "MDC_INFUS_TOTAL_NUM_STEPS" and seg.field(5) != str(len(groups)):
            out.add(
                "RXG-STEPS",
                seg,
                5,
                f"total number of steps {seg.field(5)!r} but the message has {len(groups)} RXG step(s)",
            )
