"""IHE PCD HL7 v2.6 messages: PCD-01, PCD-04 and PCD-10 encoders.

The encoders are pure functions from pump snapshots/events to ER7 bytes. Reading and judging
received messages (the tolerant parser, the conformance checker that testers, `pumpgw hl7
check` and the EHR simulator run) is common/pcd. See docs/hl7.md.
"""

from gateway.hl7.context import ControlIdGenerator, EncodeContext, PatientIdentity, PumpInfo
from gateway.hl7.encode import PCD10_EVENTS, encode_pcd01, encode_pcd04, encode_pcd10
from gateway.hl7.errors import ControlIdStateError, Hl7EncodeError, Hl7Error, UnpublishedCodeError

__all__ = [
    "PCD10_EVENTS",
    "ControlIdGenerator",
    "ControlIdStateError",
    "EncodeContext",
    "Hl7EncodeError",
    "Hl7Error",
    "PatientIdentity",
    "PumpInfo",
    "UnpublishedCodeError",
    "encode_pcd01",
    "encode_pcd04",
    "encode_pcd10",
]
