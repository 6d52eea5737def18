"""A review session: the analysis of one image, every correction and an audit log.

Saved beside the image as ``<image>.leukview.json`` (``BloodImage_00214.jpg``
-> ``BloodImage_00214.jpg.leukview.json``), written atomically so that a
crash or a full disk leaves the last saved session intact. The document is
versioned (``schema_version``); a newer version is refused with a clear
message instead of being misread.

Example (``schema_version`` 2, abridged)::

    {
      "format": "leukview-session", "schema_version": 2, "app_version": "0.1.0",
      "created": "2024-05-02T10:14:03+02:00", "modified": "2024-05-02T10:20:41+02:00",
      "image": {"name": "BloodImage_00214.jpg", "path": "/data/BloodImage_00214.jpg",
                "size_bytes": 30245, "fingerprint": "<sha256 of size, head and tail>"},
      "settings": {"models": ["wbc-type"], "segmentation": {...}, "confidence_threshold": 0.7,
                   "field": null, "target": 100, "heat_mode": "off", "heat_opacity": 0.5},
      "analysis": {<the cells.json document, reviews and calibration included>},
      "cams": {"<cell id>": {"<model>": {"shape": [h, w], "box": [x0, y0, x1, y1],
                                          "data": "<base64 uint8>"}}},
      "audit": [{"time": "...", "reviewer": "jdoe", "action": "reclassify", "cell": 7,
                 "before": "monocyte", "after": "lymphocyte", "model": "wbc-type",
                 "models": {"wbc-type": "1.0.0"}, "detail": null, "note": ""},
                {"time": "...", "reviewer": "jdoe", "action": "set pixel size", "cell": null,
                 "before": null, "after": null, "model": null, "models": {"wbc-type": "1.0.0"},
                 "detail": {"pixel_size_um": 0.25, "source": "user"}, "note": ""}]
    }

Version 1 (still read): ``settings`` was an untyped object that also held
``pixel_size_um`` and a prose ``pixel_size_source`` (now the analysis's
calibration); audit entries had ``when``, ``who``, ``model_version`` and a
prose ``detail`` (now ``time``, ``reviewer``, ``models`` and ``note``).

Layout
------
``_session`` (:class:`Session`, :func:`save_session`, :func:`load_session`,
the class-activation maps), ``_settings`` (:class:`SessionSettings`),
``_audit`` (:class:`AuditEntry` and its actions), ``_identity`` (where a
session lives, the user, the time, the image's fingerprint), ``_errors``
(the typed failures of reading one).
"""

from ._audit import (
    EDIT_ACTIONS,
    EXPORT_ACTIONS,
    REVIEW_ACTIONS,
    AnalyseDetail,
    AuditAction,
    AuditDetail,
    AuditEntry,
    CalibrationDetail,
    EditDetail,
    ExportDetail,
    ModelDetail,
    ThresholdDetail,
)
from ._errors import (
    ImageMatch,
    SessionDamaged,
    SessionNewerVersion,
    SessionNotFound,
    SessionUnreadable,
)
from ._identity import (
    SESSION_SUFFIX,
    current_user,
    fallback_session_path,
    image_fingerprint,
    now_iso,
    session_path,
)
from ._session import (
    SESSION_FORMAT,
    SESSION_SCHEMA_VERSION,
    Session,
    decode_cams,
    encode_cams,
    load_session,
    save_session,
)
from ._settings import (
    HEAT_MODES,
    MAX_TARGET,
    MIN_TARGET,
    REPORT_FIELDS,
    ReportFields,
    SessionSettings,
    legacy_calibration,
)

__all__ = [
    "EDIT_ACTIONS",
    "EXPORT_ACTIONS",
    "HEAT_MODES",
    "MAX_TARGET",
    "MIN_TARGET",
    "REPORT_FIELDS",
    "REVIEW_ACTIONS",
    "SESSION_FORMAT",
    "SESSION_SCHEMA_VERSION",
    "SESSION_SUFFIX",
    "AnalyseDetail",
    "AuditAction",
    "AuditDetail",
    "AuditEntry",
    "CalibrationDetail",
    "EditDetail",
    "ExportDetail",
    "ImageMatch",
    "ModelDetail",
    "ReportFields",
    "Session",
    "SessionDamaged",
    "SessionNewerVersion",
    "SessionNotFound",
    "SessionSettings",
    "SessionUnreadable",
    "ThresholdDetail",
    "current_user",
    "decode_cams",
    "encode_cams",
    "fallback_session_path",
    "image_fingerprint",
    "legacy_calibration",
    "load_session",
    "now_iso",
    "save_session",
    "session_path",
]
