"""common.pcd (parser, MDC terms, conformance checker) loads and judges a message without the
daemon, the simulators or the fleet being importable at all (issue 19: simulators stand alone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "gateway" / "hl7" / "golden" / "pcd01_two_channels.hl7"

# A meta path finder that refuses the three top-level packages: any import of them, however
# indirect, fails the child process.
_CHILD = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("gateway", "simulators", "fleet"):
            raise ImportError(f"common.pcd imported {name}")
        return None
sys.meta_path.insert(0, Refuse())
from common.pcd.conformance import check_message
from common.pcd.parse import parse_message, transaction_of
text = open(sys.argv[1], encoding="utf-8").read().replace("\\n", "\\r")
print(transaction_of(parse_message(text)).name, len(check_message(text)))
"""


def test_common_pcd_imports_neither_gateway_nor_simulators_nor_fleet():
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(GOLDEN)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PCD-01", "0"]
