"""Read a TOML file into a :class:`GatewayConfig`, turning every problem into a readable line.

Errors name the file, the line, the key path (``pumps[3].link.baudrate``) and what was
expected and got -- never a traceback: the reader is a biomedical engineer editing a file,
not a Python developer. All problems are collected in one pass (syntax errors excepted:
after one, TOML cannot be read further), so one run of ``check-config`` lists everything.

Values are validated strictly: ``baudrate = "9600"`` or ``enabled = "yes"`` is an error, not
a silent conversion, because a config file is written by hand and a quoted number is a slip.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from common.describe import describe
from common.diagnostics import line_for
from common.textlimits import FileTooLarge, path_problem, read_bounded, toml_too_deep
from common.tomlpos import key_lines
from gateway.config import checks
from gateway.config.model import DEFER_CROSS_CHECKS, GatewayConfig, PumpConfig, TlsConfig
from gateway.config.problems import ConfigFileError, ConfigProblem, KeyPath, Severity
from gateway.credentials import is_credential

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""A ward's configuration (hundreds of pumps) is tens of KiB; anything this large is not one."""

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")

# tomllib's terse messages, explained for someone editing the file by hand.
_TOML_HINTS = {
    "Cannot overwrite a value": "this key is already set above in the same table",
    "Cannot declare": "this table header appears twice (use [[name]] for a list of tables)",
    "Invalid value": "a value is missing or malformed (strings need quotes)",
    "Expected '=' after a key": "keys with spaces or dots need quotes; values need 'key = value'",
}


@dataclass(frozen=True)
class ConfigReport:
    """A valid configuration and the warnings found while loading it."""

    config: GatewayConfig
    source: str
    warnings: list[ConfigProblem] = field(default_factory=list)
    positions: dict[KeyPath, int] = field(default_factory=dict, repr=False)
    """Line of each key in the file, so later checks (gateway.config.preflight) can cite it."""

    def problem(self, key: KeyPath, message: str, severity: Severity = "error") -> ConfigProblem:
        return ConfigProblem(self.source, key, message, line_for(self.positions, key), severity=severity)


def load_config(path: str | Path) -> GatewayConfig:
    """Load and validate a configuration file; raise :class:`ConfigFileError` listing every problem."""
    return load_config_report(path).config


def load_config_text(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> GatewayConfig:
    """Validate configuration text; relative paths are resolved against ``base_dir`` if given."""
    return load_config_text_report(text, source=source, base_dir=base_dir).config


def load_config_report(path: str | Path) -> ConfigReport:
    """Like :func:`load_config`, also returning warnings (for ``check-config``)."""
    path = Path(path)
    source = str(path)
    too_long = path_problem(path)
    if too_long:
        raise ConfigFileError(source[:120], [ConfigProblem(source[:120] + "...", (), f"cannot read file: {too_long}")])
    try:
        raw = read_bounded(path, MAX_CONFIG_BYTES)
    except FileTooLarge as exc:
        raise ConfigFileError(source, [ConfigProblem(source, (), f"cannot read file: {exc}")]) from None
    except OSError as exc:
        raise ConfigFileError(source, [ConfigProblem(source, (), f"cannot read file: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start : exc.start + 1].hex().upper()
        problem = ConfigProblem(
            source, (), f"not UTF-8 text: byte 0x{bad} at offset {exc.start} (save the file as UTF-8)", line, column
        )
        raise ConfigFileError(source, [problem]) from None
    return load_config_text_report(text, source=source, base_dir=path.parent)


def load_config_text_report(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> ConfigReport:
    """Like :func:`load_config_text`, also returning warnings (for ``check-config``)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            source, [ConfigProblem(source, (), f"configuration text larger than {MAX_CONFIG_BYTES // 1024} KiB")]
        )
    deep = toml_too_deep(text)
    if deep is not None:  # tomllib would recurse until RecursionError
        raise ConfigFileError(source, [ConfigProblem(source, (), f"TOML {deep}", deep.line, deep.column)])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(source, [_syntax_problem(exc, source)]) from None
    except RecursionError:  # belt and braces: nesting the scan did not see
        raise ConfigFileError(source, [ConfigProblem(source, (), "TOML nested too deeply")]) from None
    positions = key_lines(text)

    def problem(
        key: KeyPath,
        message: str,
        *,
        line_key: KeyPath | None = None,
        severity: Severity = "error",
        related: tuple[KeyPath, ...] = (),
    ) -> ConfigProblem:
        see = [n for n in (line_for(positions, r) for r in related) if n is not None]
        if see:
            message += f" (line {', '.join(map(str, see))})"
        return ConfigProblem(source, key, message, line_for(positions, line_key or key), severity=severity)

    problems: list[ConfigProblem] = []
    dates = list(_date_values(data, ()))
    for key, value in dates:
        problems.append(problem(key, f"expected a string, number or boolean; got the TOML date/time {value}"))
    date_keys = {key for key, _ in dates}
    document = json.dumps(data, default=str)
    config: GatewayConfig | None = None
    try:
        config = GatewayConfig.model_validate_json(document, strict=True, context={DEFER_CROSS_CHECKS: True})
    except ValidationError as exc:
        for err in exc.errors():
            described = describe(err, root=GatewayConfig)
            if described.key not in date_keys:
                problems.append(problem(described.key, described.message, line_key=described.line_key))
    # Names are compared as written, so a duplicate is reported even beside a broken entry;
    # shared links only among pumps that validated on their own.
    names = checks.duplicate_names(_raw_names(data, "pumps", "id"), _raw_names(data, "destinations", "name"))
    pumps = list(enumerate(config.pumps)) if config else _valid_items(data.get("pumps"), PumpConfig)
    for finding in names + checks.shared_links(pumps):
        problems.append(problem(finding.key, finding.message, related=finding.related))
    if problems or config is None:
        problems.sort(key=lambda p: p.line or 0)
        raise ConfigFileError(source, problems)
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    too_long = [problem(key, message) for key, message in _unusable_paths(config)]
    if too_long:
        raise ConfigFileError(source, too_long)
    warnings = [problem(f.key, f.message, severity="warning") for f in checks.warnings(config)]
    warnings.sort(key=lambda p: p.line or 0)
    return ConfigReport(config=config, source=source, warnings=warnings, positions=positions)


def _syntax_problem(exc: tomllib.TOMLDecodeError, source: str) -> ConfigProblem:
    """tomllib puts the position at the end of its message; move it where editors look."""
    message = str(exc)
    found = _TOML_POSITION.search(message)
    line, column = (int(found.group(1)), int(found.group(2))) if found else (None, None)
    message = _TOML_POSITION.sub("", message)
    hint = next((h for start, h in _TOML_HINTS.items() if message.startswith(start)), None)
    message += f" ({hint})" if hint else ""
    return ConfigProblem(source, (), f"TOML syntax error: {message}", line, column)


def _date_values(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """TOML dates and times, which no key of this configuration takes."""
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        yield path, value.isoformat()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _date_values(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _date_values(item, path + (index,))


def _raw_names(data: dict[str, Any], table: str, key: str) -> list[tuple[int, str]]:
    entries = data.get(table)
    if not isinstance(entries, list):
        return []
    return [(i, e[key]) for i, e in enumerate(entries) if isinstance(e, dict) and isinstance(e.get(key), str)]


def _valid_items(raw: Any, model: type[BaseModel]) -> list[tuple[int, Any]]:
    """The entries of a list that validate on their own, with their index (for cross checks)."""
    if not isinstance(raw, list):
        return []
    out = []
    for index, item in enumerate(raw):
        try:
            out.append((index, model.model_validate_json(json.dumps(item, default=str), strict=True)))
        except ValidationError:
            continue  # already reported by the whole-file validation
    return out


def _resolve_paths(config: GatewayConfig, base_dir: Path) -> GatewayConfig:
    """Relative file paths in a config file are relative to that file, not to the cwd."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() or is_credential(p) else (base_dir / p)

    def fix_tls(tls: TlsConfig) -> TlsConfig:
        names = ("ca_file", "cert_file", "key_file", "key_passphrase_file", "crl_file")
        return tls.model_copy(update={n: fix(getattr(tls, n)) for n in names})

    outbox = config.outbox.model_copy(update={"path": fix(config.outbox.path)})
    library = (
        config.library.model_copy(
            update={
                "path": fix(config.library.path),
                "watch_dir": fix(config.library.watch_dir),
                "trusted_keys": [k.model_copy(update={"file": fix(k.file)}) for k in config.library.trusted_keys],
            }
        )
        if config.library
        else None
    )
    mqtt = config.mqtt.model_copy(
        update={"password_file": fix(config.mqtt.password_file), "tls": fix_tls(config.mqtt.tls)}
    )
    destinations = [d.model_copy(update={"tls": fix_tls(d.tls)}) for d in config.destinations]
    health = config.health.model_copy(
        update={n: fix(getattr(config.health, n)) for n in ("cert_file", "key_file", "password_file")}
    )
    return config.model_copy(
        update={"outbox": outbox, "library": library, "mqtt": mqtt, "destinations": destinations, "health": health}
    )


def _file_paths(config: GatewayConfig) -> Iterator[tuple[KeyPath, Path | None]]:
    yield ("outbox", "path"), config.outbox.path
    if config.library is not None:
        yield ("library", "path"), config.library.path
    yield ("mqtt", "password_file"), config.mqtt.password_file
    for prefix, tls in [
        (("mqtt", "tls"), config.mqtt.tls),
        *((("destinations", i, "tls"), d.tls) for i, d in enumerate(config.destinations)),
    ]:
        for name in ("ca_file", "cert_file", "key_file"):
            yield prefix + (name,), getattr(tls, name)


def _unusable_paths(config: GatewayConfig) -> Iterator[tuple[KeyPath, str]]:
    """Paths no file system can open (too long): an error of their own, not an OSError later."""
    for key, path in _file_paths(config):
        why = path_problem(path) if path is not None else None
        if why:
            yield key, why
