"""EHR / alert-manager MLLP receiver simulator (`pumpgw ehr-sim`)."""

from simulators.ehr.modes import Mode, ModeError, parse_mode, parse_schedule
from simulators.ehr.receiver import EhrReceiver, Received, build_ack

__all__ = ["EhrReceiver", "Mode", "ModeError", "Received", "build_ack", "parse_mode", "parse_schedule"]
