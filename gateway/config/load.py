"""Read a TOML file into a :class:`GatewayConfig`, turning every problem into a readable line.

Errors name the file, the key path (``pumps[3].link.baudrate``), the line where it can be
found, and what was expected -- never a traceback: the reader is a biomedical engineer
editing a file, not a Python developer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from gateway.config.model import GatewayConfig
from gateway.errors import ConfigError


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"not UTF-8 text (byte offset {exc.start})"]) from None
    return load_config_text(text, source=str(path), base_dir=path.parent)


def load_config_text(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> GatewayConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax error: {exc}"]) from None
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err, text) for err in exc.errors()]) from None
    return _resolve_paths(config, base_dir) if base_dir is not None else config


def _describe(err: dict, text: str) -> str:
    loc = _key_path(err["loc"])
    line = _find_line(err["loc"], text)
    where = f"line {line}: " if line else ""
    if err["type"] == "extra_forbidden":
        return f"{where}{loc}: unknown key (check the spelling; see docs/config-reference.md)"
    if err["type"] == "missing":
        return f"{where}{loc}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{where}{loc}: {msg}{shown}"


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("serial", "tcp") and out.endswith("link"):
            continue  # pydantic's discriminator tag, not a key the user wrote
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _find_line(loc: tuple, text: str) -> int | None:
    """Best-effort line number: the table of the error, then the key inside it.

    tomllib does not report positions, so we walk the text: ``[[pumps]]`` headers are
    counted to reach ``pumps[3]``; the last string key of the path is then searched for
    inside that table.
    """
    lines = text.splitlines()
    start, end = 0, len(lines)
    keys = [p for p in loc if isinstance(p, str) and p not in ("serial", "tcp")]
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        header = f"[[{loc[0]}]]"
        seen = -1
        for number, line in enumerate(lines):
            if line.strip().startswith(header):
                seen += 1
                if seen == loc[1]:
                    start = number
                elif seen == loc[1] + 1:
                    end = number
                    break
        if seen < loc[1]:
            return None
        keys = keys[1:]
    elif keys:
        for number, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("[") and stripped.strip("[]").strip() == keys[0]:
                start = number
                keys = keys[1:]
                break
    if not keys:
        return start + 1 if start or (lines and lines[0].strip().startswith("[")) else None
    for number in range(start, end):
        stripped = lines[number].strip()
        if stripped.startswith(f"{keys[-1]} ") or stripped.startswith(f"{keys[-1]}=") or f" {keys[-1]} =" in stripped or f"{{{keys[-1]} =" in stripped or f", {keys[-1]} =" in stripped:
            return number + 1
    return start + 1 if start else None


def _resolve_paths(config: GatewayConfig, base_dir: Path) -> GatewayConfig:
    """Relative file paths in a config file are relative to that file, not to the cwd."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base_dir / p)

    outbox = config.outbox.model_copy(update={"path": fix(config.outbox.path)})
    library = config.library.model_copy(update={"path": fix(config.library.path)}) if config.library else None
    return config.model_copy(update={"outbox": outbox, "library": library})
