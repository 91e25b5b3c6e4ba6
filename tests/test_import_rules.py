"""The layering rules of design.md §4 and §7, checked on the source (issue 19 item 4).

Read with ``ast`` (nothing is imported, so a lazy import inside a function counts as much as
one at the top): every ``import x.y`` and ``from x.y import z`` of a module is matched against
the rules below. Relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Rule:
    """Modules under ``source`` never import anything under one of ``forbidden``."""

    source: str
    forbidden: tuple[str, ...]
    why: str


RULES = (
    Rule("drivers", ("gateway", "simulators", "fleet"), "drivers are the bottom layer (zigpy-znp never imports zha)"),
    Rule("simulators", ("gateway", "fleet"), "a tester takes the simulators without the daemon"),
    Rule("common", ("gateway", "simulators", "fleet", "drivers"), "both sides import common; it imports neither"),
    Rule("fleet", ("gateway",), "the contract with the gateways is the MQTT topic tree and its schemas"),
    Rule("gateway.druglib", ("gateway.hl7", "gateway.mqtt", "gateway.mllp"), "the drug library knows no wire format"),
    Rule("gateway.outbox", ("gateway.hl7", "gateway.mqtt", "gateway.mllp"), "the outbox stores bytes"),
)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the file; ``from a import b`` yields
    both ``a`` and ``a.b`` (``b`` may be a sub-module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
    return found


def violations(root: Path, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """One line per broken import statement and rule (naming the module after ``from``)."""
    found: dict[tuple[str, int, str], str] = {}
    for path in sorted(root.rglob("*.py")):
        if ".venv" in path.parts:
            continue
        module = module_name(root, path)
        rel = path.relative_to(root)
        for rule in rules:
            if not _under(module, rule.source):
                continue
            for line, imported in imports_of(path, module):  # `a` before `a.b`: the first one is kept
                bad = next((f for f in rule.forbidden if _under(imported, f)), None)
                if bad is not None:
                    found.setdefault(
                        (str(rel), line, rule.source),
                        f"{rel}:{line}: {module} imports {imported} ({rule.source} -> {bad}: {rule.why})",
                    )
    return sorted(found.values())


def test_the_source_tree_keeps_the_layering_rules():
    assert violations(REPO) == []


def test_the_check_sees_the_packages_it_rules_on():
    for package in ("drivers", "simulators", "common", "fleet", "gateway/druglib", "gateway/outbox"):
        assert any((REPO / package).rglob("*.py")), package


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_broken_rule_is_reported_with_file_line_and_reason(tmp_path):
    _write(
        tmp_path,
        {
            "drivers/__init__.py": "",
            "drivers/ok.py": "from common.errors import PumpgwError\nimport drivers.ok\n",
            "drivers/bad.py": '"""doc"""\n\ndef f():\n    from gateway.pipeline import Pipeline\n',
            "simulators/__init__.py": "",
            "simulators/ehr/__init__.py": "",
            "simulators/ehr/bad.py": "import gateway.mllp.framing\n",
            "common/__init__.py": "",
            "common/bad.py": "from drivers import errors\n",
            "fleet/__init__.py": "",
            "fleet/bad.py": "from gateway import errors\n",
            "gateway/__init__.py": "",
            "gateway/druglib/__init__.py": "",
            "gateway/druglib/bad.py": "from ..hl7.verdict_rows import verdict_observations\n",
            "gateway/druglib/ok.py": "from gateway.config import load_config\nfrom gateway.errors import BadInput\n",
            "gateway/outbox/__init__.py": "",
            "gateway/outbox/bad.py": "from gateway.mqtt import publisher\n",
            "gateway/pipeline.py": "from gateway.hl7 import encode\nfrom gateway.mqtt import payloads\n",
        },
    )
    found = violations(tmp_path)
    assert [v.split(":")[0] for v in found] == [
        "common/bad.py",
        "drivers/bad.py",
        "fleet/bad.py",
        "gateway/druglib/bad.py",
        "gateway/outbox/bad.py",
        "simulators/ehr/bad.py",
    ]
    assert "drivers/bad.py:4: drivers.bad imports gateway.pipeline (drivers -> gateway:" in found[1]
    assert "gateway.druglib.bad imports gateway.hl7.verdict_rows (gateway.druglib -> gateway.hl7:" in found[3]


def test_a_clean_fixture_tree_passes(tmp_path):
    _write(
        tmp_path,
        {
            "drivers/a.py": "from common.errors import BadInput\n",
            "simulators/a.py": "from common.mllp.framing import frame\nfrom drivers.model import PumpSnapshot\n",
            "gateway/druglib/a.py": "from gateway.config.model import GatewayConfig\n",
        },
    )
    assert violations(tmp_path) == []
