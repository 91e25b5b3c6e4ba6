"""MLLP (HL7 Minimal Lower Layer Protocol) framing, shared by the gateway's sender and
inbound sources and by the EHR and vendor-server simulators. Sans-I/O."""
