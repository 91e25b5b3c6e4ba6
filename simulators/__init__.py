"""Simulators of what surrounds pumpgw: infusion pumps speaking each supported protocol
(one pump model, protocol front-ends over ptys and TCP) and the EHR/MLLP receiver.

Test and demo equipment only; nothing in ``gateway`` imports this package at run time
except the demo command.
"""
