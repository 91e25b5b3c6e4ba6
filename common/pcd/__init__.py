"""Reading IHE PCD (HL7 v2.6) messages: the tolerant parser and the MDC terms it needs.

Receive side only; the encoders are the gateway's (gateway/hl7). The conformance checker is
the sub-package ``common.pcd.conformance``. Pure functions over text: no I/O, no logging,
no import of ``gateway``, ``simulators`` or ``fleet``.
"""
