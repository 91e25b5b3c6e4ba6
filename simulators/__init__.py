"""Pump simulators: one infusion-pump model, protocol front-ends over ptys and TCP.

Test and demo equipment only; nothing in ``gateway`` imports this package at run time
except the demo command.
"""
