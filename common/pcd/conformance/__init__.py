"""The IHE PCD conformance checker: ``check_message(raw) -> list[Finding]``.

Run by ``pumpgw hl7 check``, the EHR simulator on every message it receives, and a vendor-server
source (gateway/sources) on every inbound message. Rules and their TF sources: docs/hl7.md.
"""

from common.pcd.conformance.check import check_message, conformance_findings
from common.pcd.conformance.findings import WARNING_RULES, Finding

__all__ = ["WARNING_RULES", "Finding", "check_message", "conformance_findings"]
