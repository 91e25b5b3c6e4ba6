"""The central drug library: model, loading with an integrity pin, dose engine and verdicts.

Integration points (issue 7): :func:`load_library`, :class:`LibraryHolder` (reload on SIGHUP
and on file change, refusing bad files), :func:`program_from_channel` + :func:`evaluate` (one
:class:`VerdictSet` per program). How verdicts travel in HL7 (OBX rows, the local code system)
is the HL7 layer's business: :mod:`gateway.hl7.verdict_rows`. The drug library knows no wire format.
"""

from gateway.druglib.check import ProgramUnderCheck, evaluate, program_from_channel
from gateway.druglib.errors import (
    LibraryError,
    LibraryInvalid,
    LibraryPinMismatch,
    LibraryProblem,
    LibraryUnreadable,
    UnitError,
    UnitFamilyMismatch,
)
from gateway.druglib.holder import ALERT_REFUSED, LibraryHolder, ReloadResult, ReloadStatus
from gateway.druglib.load import LoadedLibrary, load_library, load_library_bytes
from gateway.druglib.model import DrugLibrary
from gateway.druglib.verdicts import Severity, Verdict, VerdictKind, VerdictSet

__all__ = [
    "ALERT_REFUSED",
    "DrugLibrary",
    "LibraryError",
    "LibraryHolder",
    "LibraryInvalid",
    "LibraryPinMismatch",
    "LibraryProblem",
    "LibraryUnreadable",
    "LoadedLibrary",
    "ProgramUnderCheck",
    "ReloadResult",
    "ReloadStatus",
    "Severity",
    "UnitError",
    "UnitFamilyMismatch",
    "Verdict",
    "VerdictKind",
    "VerdictSet",
    "evaluate",
    "load_library",
    "load_library_bytes",
    "program_from_channel",
]
