"""B. Braun SpaceCom BCC-style racks over TCP (reference §6): framing, records, read-only driver."""
