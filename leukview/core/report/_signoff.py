"""Sign-off: who signed a case and when, read from its audit log, and the case fields.

A case is signed only when no flagged cell is left unreviewed (:func:`sign_off`);
any change to the review after the signature makes the report a draft again
(:attr:`Signature.valid`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..calls import differential_count
from ..errors import SessionError
from ..session import EXPORT_ACTIONS, AuditAction, AuditEntry, ReportFields, current_user

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["AuditLike", "SignOffRefused", "Signature", "set_report_fields", "sign_off", "signature"]


class AuditLike(Protocol):
    """An audit-log entry as the report reads it.

    Corrections are the entries with a ``cell`` whose ``before`` and
    ``after`` differ; the sign-off is an entry whose ``action`` is
    ``sign off`` (read with ``getattr``, so entries without them are simply
    neither).
    """

    @property
    def when(self) -> str: ...

    @property
    def who(self) -> str: ...

    def describe(self) -> str: ...


class SignOffRefused(SessionError):
    """The case cannot be signed yet: flagged cells are left unreviewed.

    Attributes
    ----------
    remaining : int
        How many.
    """

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        cells = "cell is" if remaining == 1 else "cells are"
        super().__init__(
            f"cannot sign: {remaining} flagged {cells} not reviewed yet (every flagged cell must be "
            "accepted or reclassified first)"
        )


@dataclass(frozen=True)
class Signature:
    """Who signed the case and when, and whether the review is still as signed.

    Attributes
    ----------
    who, when : str
        From the audit log's ``sign off`` entry.
    changes_after : int
        Audit entries after it that change the review (exports do not).
    """

    who: str
    when: str
    changes_after: int = 0

    @property
    def valid(self) -> bool:
        """Nothing changed since the signature: the report is signed, not a draft."""
        return self.changes_after == 0


def signature(audit: Sequence[AuditLike]) -> Signature | None:
    """The last sign-off of an audit log (None when the case was never signed)."""
    last = None
    for index, entry in enumerate(audit):
        if getattr(entry, "action", None) is AuditAction.SIGN:
            last = index
    if last is None:
        return None
    entry = audit[last]
    later = [e for e in audit[last + 1 :] if getattr(e, "action", None) not in EXPORT_ACTIONS]
    return Signature(str(entry.who), str(entry.when), len(later))


def sign_off(session: Session, who: str | None, threshold: float) -> AuditEntry:
    """Sign a case: audited, refused while a flagged cell is unreviewed (:class:`SignOffRefused`).

    Parameters
    ----------
    session : Session
    who : str, optional
        The signer (the system user when None).
    threshold : float
        The confidence threshold the flags follow (the document's).

    Returns
    -------
    AuditEntry
        The ``sign off`` entry.
    """
    diff = differential_count(session.analysis.cells, session.analysis.models, threshold)
    if diff.flagged:
        raise SignOffRefused(diff.flagged)
    note = f"{diff.reviewed} of {diff.total} white cells reviewed, no flagged cell left"
    return session.log(AuditAction.SIGN, note=note, who=who or current_user())


def set_report_fields(session: Session, fields: ReportFields, who: str | None) -> AuditEntry | None:
    """Change the case fields of a session; audited (each change named); None when nothing changed."""
    fields.validate()
    changes = session.settings.report.changes(fields)
    if not changes:
        return None
    session.settings.report = dataclasses.replace(fields)
    return session.log(AuditAction.SET_REPORT_DETAILS, note="; ".join(changes), who=who)
