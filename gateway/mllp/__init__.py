"""MLLP transport to HL7 receivers: framing, ACK parsing, one sender per destination."""
