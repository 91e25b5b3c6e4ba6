"""Code the daemon (``gateway``) and the simulators both use, importable without either.

Pure codecs and helpers only: MLLP framing, reading and judging IHE PCD messages, and the
"problem in file at line/column" diagnostics. Nothing here does I/O on its own, and nothing
here imports ``gateway``, ``simulators`` or ``fleet`` (tests/test_import_rules.py keeps it so).
"""
