"""Vendor-server scripts (TOML), run like the pump scenarios' timelines.

    [server]
    id_prefix = "VS"          # MSH-10 prefix
    repeat_pcd01_s = 30       # resend every program's PCD-01 this often (0: once)

    [[steps]]
    at_s = 0                  # seconds after the start
    send = "pcd01"            # pcd01 | pcd10 | pcd04 | all_verdicts
    program = "above_hard_max"  # a key of VERDICT_PROGRAMS (not for all_verdicts)
    event = "start"           # pcd10: start | stop;  pcd04: phase start | end
    fault = "duplicate"       # optional: duplicate | reused_id | malformed | slow | disconnect

Without a script the built-in one sends ``all_verdicts`` once. Unknown keys are errors that
name the step.
"""

from __future__ import annotations

import asyncio
import logging
import time
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulators.vendor_server.client import FAULTS, VendorServer
from simulators.vendor_server.messages import VERDICT_PROGRAMS

log = logging.getLogger("pumpgw.sim.vendor")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Strict):
    at_s: float = Field(default=0, ge=0)
    send: Literal["pcd01", "pcd10", "pcd04", "all_verdicts"]
    program: str = "within_limits"
    event: str = "start"
    fault: str | None = None


class Server(_Strict):
    id_prefix: str = "VS"
    repeat_pcd01_s: float = Field(default=0, ge=0)


class Script(_Strict):
    server: Server = Server()
    steps: list[Step] = Field(default_factory=lambda: [Step(send="all_verdicts")])


class ScriptError(Exception):
    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path, self.problems = path, problems


def load_script(path: Path | None) -> Script:
    if path is None:
        return Script()
    try:
        script = Script.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScriptError(str(path), [str(exc)]) from None
    except ValidationError as exc:
        raise ScriptError(str(path), [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    problems = [
        f"steps.{i}.program: unknown program {s.program!r} (known: {', '.join(VERDICT_PROGRAMS)})"
        for i, s in enumerate(script.steps)
        if s.program not in VERDICT_PROGRAMS
    ]
    problems += [
        f"steps.{i}.fault: unknown fault {s.fault!r} (known: {', '.join(FAULTS)})"
        for i, s in enumerate(script.steps)
        if s.fault is not None and s.fault not in FAULTS
    ]
    if problems:
        raise ScriptError(str(path), problems)
    return script


async def run_script(server: VendorServer, script: Script, *, stop: asyncio.Event | None = None) -> int:
    """Run every step at its time; then, if asked, resend every PCD-01 periodically until ``stop``."""
    t0 = time.monotonic()
    alerts = 0
    for step in sorted(script.steps, key=lambda s: s.at_s):
        await asyncio.sleep(max(0.0, t0 + step.at_s - time.monotonic()))
        program = VERDICT_PROGRAMS[step.program]
        if step.send == "all_verdicts":
            await server.run_verdicts(faults=(step.fault,) if step.fault else ())
        elif step.send == "pcd01":
            await server.pcd01(program, fault=step.fault)
        elif step.send == "pcd10":
            await server.pcd10(program, step.event, fault=step.fault)
        else:
            alerts += step.event == "start"
            await server.pcd04(program, f"{script.server.id_prefix}-AL{alerts}", step.event, fault=step.fault)
        log.info("vendor server: %s %s sent%s", step.send, step.program, f" ({step.fault})" if step.fault else "")
    while script.server.repeat_pcd01_s > 0 and not (stop is not None and stop.is_set()):
        await asyncio.sleep(script.server.repeat_pcd01_s)
        await server.run_verdicts()
    return len(server.answers)
