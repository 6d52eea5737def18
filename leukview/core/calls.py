"""The one rule for a cell's call, and everything counted from it.

Every place that shows or counts a class (the CLI's summary.csv and overlay
PNG, cells.json, the viewer's labels, table, gallery and differential, the
CSV, the PDF report and the session's audit log) asks :func:`call_cell`;
nothing else decides a class.

The rule
--------
1. A reviewer's label, when there is one (source ``"review"``).
2. Else, only when the primary model cannot call that class itself, a flag
   model (one with a positive class, e.g. the retired all-blast's ``blast``)
   that calls the cell positive. A type model with ``blast`` among its
   classes (wbc-type 2) makes the one call: no second model overrides a
   three-lobed granulocyte into a blast.
3. Else the primary model's label (the first model without a positive class
   that refines nothing: the white-cell type model), unless a refining model
   (a second stage, :attr:`~leukview.core.runs.ModelRun.refines`) re-decides
   that label: then the refining model's label. The shipped pair is a
   hierarchy: wbc-type decides the lineage, and the cells it calls
   lymphocyte, monocyte or erythroblast (the mononuclear cells, where a
   B-ALL blast hides) are re-decided by wbc-mononuclear among those three and
   blast. A granulocyte is never a blast, and each cell is counted once.
4. Else no call (``label`` None: "unclassified").

Flags say why a cell goes to the reviewer first: ``atypical`` (a model's
open-set score, :attr:`~leukview.core.cells.Prediction.atypicality`, is over
its threshold: the cell is unlike anything the model was trained on),
``low-confidence`` (some model's top probability is under the threshold),
``blast`` (the call is a blast class).

One call per cell, as on a CellaVision screen: the blast row of the
differential and the blast percentage are the same number, over the same
denominator (classified white cells, :data:`NON_LEUKOCYTE` excluded). An
unreviewed atypical cell keeps the model's label on screen but is counted in
no class: it is "unclassified (review)" (:attr:`Differential.atypical`),
outside the denominator, until a reviewer decides.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .classes import LiveMapping, LiveSequence, LiveSet, abbreviation, active_classes

if TYPE_CHECKING:
    from .cells import Cell
    from .runs import ModelRun

REVIEW = "review"
ARTEFACT = "artefact"
DEFAULT_CONFIDENCE_THRESHOLD = 0.7

FLAG_LOW_CONFIDENCE = "low-confidence"
FLAG_BLAST = "blast"
FLAG_ATYPICAL = "atypical"

# The laboratory's class list (leukview.core.classes) decides the order, the colours, the names
# and what counts; these names read the list in use at each access.
# Clinical reading order; unknown classes follow in their model's order.
CLINICAL_ORDER: Sequence[str] = LiveSequence(lambda: active_classes().names)
# Offered for manual review when no type model is installed (and with one: the lab's list).
DEFAULT_CLASSES: Sequence[str] = LiveSequence(lambda: active_classes().names)
# Counted and shown, but not part of the white-cell total that percentages use.
NON_LEUKOCYTE: AbstractSet[str] = LiveSet(lambda: active_classes().not_counted() | {ARTEFACT})

# One palette for every view (Qt or not): colour-blind safe, never alone (see classes.abbreviation).
CLASS_COLOURS: Mapping[str, str] = LiveMapping(lambda: active_classes().colours())
UNCLASSIFIED_COLOUR = "#FFFFFF"
FLAG_COLOUR = "#FFB300"
DISPLAY_NAMES: Mapping[str, str] = LiveMapping(lambda: active_classes().displays())


def class_colour(name: str | None) -> str:
    """The colour of a class as ``#RRGGBB``; unknown classes get a stable golden-angle hue."""
    if name is None:
        return UNCLASSIFIED_COLOUR
    known = active_classes().get(name)
    if known is not None:
        return known.colour
    hue = (sum(map(ord, name)) * 0.381966) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return f"#{int(r * 255):02X}{int(g * 255):02X}{int(b * 255):02X}"


def class_rgb(name: str | None) -> tuple[int, int, int]:
    """:func:`class_colour` as an (r, g, b) tuple of ints in [0, 255]."""
    text = class_colour(name)
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def display_name(name: str | None) -> str:
    """How a class is written on screen (``ig`` -> ``IG``); ``unclassified`` for None."""
    if name is None:
        return "unclassified"
    known = active_classes().get(name)
    return known.display if known is not None else name


@dataclass(frozen=True)
class CellCall:
    """The current class of one cell, where it comes from, and why it needs a look.

    Attributes
    ----------
    label : str or None
        None when no model classified the cell and nobody reviewed it.
    confidence : float or None
        The deciding model's probability for ``label``; None for a reviewer's call.
    source : str or None
        The deciding model's name, ``"review"``, or None without a call.
    flags : tuple of str
        :data:`FLAG_LOW_CONFIDENCE`, :data:`FLAG_BLAST`, :data:`FLAG_ATYPICAL`.
    reasons : tuple of str
        One human sentence per flag, e.g. ``all-blast: 62 % < 70 %``.
    """

    label: str | None
    confidence: float | None
    source: str | None
    flags: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def reviewed(self) -> bool:
        return self.source == REVIEW

    @property
    def model(self) -> str | None:
        """The deciding model (None for a reviewer's call or no call)."""
        return None if self.source in (None, REVIEW) else self.source

    @property
    def needs_review(self) -> bool:
        """Unreviewed and flagged: offered to the reviewer first."""
        return not self.reviewed and bool(self.flags)

    @property
    def atypical(self) -> bool:
        """Unreviewed and flagged :data:`FLAG_ATYPICAL`: counted as "unclassified (review)"."""
        return not self.reviewed and FLAG_ATYPICAL in self.flags

    @property
    def counted_label(self) -> str | None:
        """The class the differential counts this cell in: None while it is atypical and unreviewed."""
        return None if self.atypical else self.label

    def to_dict(self) -> dict[str, Any]:
        """The ``call`` object of cells.json (schema 2)."""
        return {
            "label": self.label,
            "confidence": None if self.confidence is None else round(float(self.confidence), 6),
            "source": self.source,
        }


def primary_model(models: Sequence[ModelRun]) -> ModelRun | None:
    """The model whose classes make the differential: the first without a positive class or refines."""
    return next((m for m in models if not m.positive_class and not m.refines), None)


def refining_models(models: Sequence[ModelRun]) -> list[ModelRun]:
    """Second-stage models: each re-decides the cells the primary model calls one of its ``refines``."""
    return [m for m in models if m.refines and not m.positive_class]


def flag_models(models: Sequence[ModelRun]) -> list[ModelRun]:
    """Models that flag a positive class (e.g. ``blast``) over the primary model's call."""
    return [m for m in models if m.positive_class]


def blast_callers(models: Sequence[ModelRun]) -> list[ModelRun]:
    """The models whose output can make a blast call: flag models, and type or refining models with a blast class."""
    positives = positive_classes(models)
    primary = primary_model(models)
    typed = [m for m in models if (m is primary or m.refines) and not m.positive_class]
    return [m for m in models if m.positive_class or (m in typed and positives & set(m.classes))]


def positive_classes(models: Sequence[ModelRun]) -> set[str]:
    """Names that count as blasts: every flag model's positive class and the class list's blasts."""
    lab = set(active_classes().in_group("blast"))  # the lab's blast lineages count as blasts too
    return {m.positive_class for m in flag_models(models) if m.positive_class} | lab or {"blast"}


def _model_call(cell: Cell, models: Sequence[ModelRun]) -> tuple[str | None, float | None, str | None]:
    primary = primary_model(models)
    own = set(primary.classes) if primary is not None else set()
    for run in flag_models(models):
        if run.positive_class in own:  # the type model calls this class itself: one call per cell
            continue
        pred = cell.predictions.get(run.name)
        if pred is not None and pred.label == run.positive_class:
            return pred.label, pred.confidence, run.name
    if primary is not None:
        pred = cell.predictions.get(primary.name)
        if pred is not None:
            for run in refining_models(models):
                second = cell.predictions.get(run.name)
                if second is not None and run.refines and pred.label in run.refines:
                    return second.label, second.confidence, run.name
            return pred.label, pred.confidence, primary.name
    return None, None, None


def unsure_models(
    cell: Cell, models: Sequence[ModelRun], threshold: float, source: str | None
) -> list[tuple[str, float]]:
    """(name, confidence) of the models whose top probability on the cell is under ``threshold``.

    A second stage (a refining model) speaks only for the cells it re-decided
    (``source`` is its name): on a granulocyte its four-class answer means nothing.
    """
    return [
        (run.name, float(cell.predictions[run.name].confidence))
        for run in models
        if run.name in cell.predictions
        and cell.predictions[run.name].confidence < threshold
        and (not run.refines or run.name == source)
    ]


def call_cell(
    cell: Cell,
    models: Sequence[ModelRun],
    threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    *,
    use_review: bool = True,
) -> CellCall:
    """The current call on a cell (see the module docstring for the rule).

    Parameters
    ----------
    cell : Cell
    models : sequence of ModelRun
        The models that ran, as recorded in the analysis (their order matters:
        the first model without a positive class is the primary one).
    threshold : float
        A model's top probability under this flags the unreviewed cell ``low-confidence``.
    use_review : bool
        False gives the models' call, as if nobody had reviewed the cell.

    Returns
    -------
    CellCall
    """
    if use_review and cell.review.label is not None:
        label: str | None = cell.review.label
        confidence: float | None = None
        source: str | None = REVIEW
    else:
        label, confidence, source = _model_call(cell, models)
    flags: list[str] = []
    reasons: list[str] = []
    if source != REVIEW:
        unlike = [
            (run.name, cell.predictions[run.name].atypicality)
            for run in models
            if run.name in cell.predictions and cell.predictions[run.name].atypical
        ]
        if unlike:
            flags.append(FLAG_ATYPICAL)
            reasons.append(
                "atypical, unlike the training cells: "
                + ", ".join(f"{name} {value:.1f}x its open-set threshold" for name, value in unlike)
            )
        low = unsure_models(cell, models, threshold, source)
        if low:
            flags.append(FLAG_LOW_CONFIDENCE)
            reasons.append(
                "low confidence: " + ", ".join(f"{name} {value:.0%} < {threshold:.0%}" for name, value in low)
            )
    if label is not None and label in positive_classes(models):
        flags.append(FLAG_BLAST)
        reasons.append("called blast" + (" by the reviewer" if source == REVIEW else f" by {source}"))
    return CellCall(label, confidence, source, tuple(flags), tuple(reasons))


def _ordered(names: Sequence[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(CLINICAL_ORDER)}
    position = {name: i for i, name in enumerate(names)}
    return sorted(dict.fromkeys(names), key=lambda n: (rank.get(n, len(rank)), position[n]))


def review_classes(models: Sequence[ModelRun]) -> list[str]:
    """The classes a reviewer can assign, in clinical order, ``artefact`` last.

    The laboratory's class list (:func:`leukview.core.classes.active_classes`),
    whatever the models know, then the primary model's classes and every flag
    model's positive class that the list does not name (a model label that is
    an alias of a class is that class), and always ``blast``.
    """
    lab = active_classes()
    primary = primary_model(models)
    names = list(lab.names) + (list(primary.classes) if primary else [])
    names += [m.positive_class for m in flag_models(models) if m.positive_class]
    names.append("blast")
    names = [lab.canonical(n) for n in names]
    return [n for n in _ordered(names) if n != ARTEFACT] + [ARTEFACT]


def review_cells(cells: Sequence[Cell]) -> list[Cell]:
    """The cells a differential reviews: white cells, plus any cell a reviewer labelled."""
    return [c for c in cells if c.kind == "wbc" or c.review.label is not None]


def lowest_confidence(cell: Cell, models: Sequence[ModelRun]) -> float | None:
    """The lowest top-class probability any of ``models`` gave the cell (None if none ran)."""
    values = [cell.predictions[m.name].confidence for m in models if m.name in cell.predictions]
    return min(values) if values else None


def review_order(
    cells: Sequence[Cell], models: Sequence[ModelRun], threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
) -> list[Cell]:
    """Review cells in the order they are offered: atypical, other flagged, unreviewed, reviewed.

    Within each group, lower confidence comes first; ties keep reading order
    (top to bottom, left to right), so the order is stable.
    """

    def key(cell: Cell) -> tuple[int, float, float, float]:
        call = call_cell(cell, models, threshold)
        lowest = lowest_confidence(cell, models)
        group = 3 if call.reviewed else (0 if call.atypical else (1 if call.needs_review else 2))
        return (group, 1.0 if lowest is None else lowest, round(cell.centroid[1] / 32.0), cell.centroid[0])

    return sorted(review_cells(cells), key=key)


@dataclass
class Differential:
    """Counts per class over the review cells, from :func:`call_cell`.

    Attributes
    ----------
    classes : list of str
        Rows, in display order.
    counts : dict of str to int
        Cells per class (every class in ``classes`` present, zero when none).
    leukocytes : int
        Classified white cells: the one denominator of every percentage
        (classes in :data:`NON_LEUKOCYTE` and unclassified cells excluded).
    unclassified : int
        White cells with neither a model call nor a review.
    atypical : int
        "Unclassified (review)": unreviewed cells flagged ``atypical``, counted
        in no class and outside :attr:`leukocytes` until a reviewer decides.
    reviewed, total : int
        Review cells a person has labelled, and all review cells.
    flagged : int
        Unreviewed cells still flagged for review.
    positives : set of str
        The classes that count as blasts.
    can_call_blast : bool
        Whether anything could have called a blast (a model with a blast class
        ran, or a person reviewed a cell).
    """

    classes: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    leukocytes: int = 0
    unclassified: int = 0
    atypical: int = 0
    reviewed: int = 0
    total: int = 0
    flagged: int = 0
    positives: set[str] = field(default_factory=lambda: {"blast"})
    can_call_blast: bool = False

    def percent(self, name: str) -> float | None:
        """Percentage of the white-cell total; None for non-leukocyte classes or an empty count."""
        if name in NON_LEUKOCYTE or not self.leukocytes:
            return None
        return 100.0 * self.counts.get(name, 0) / self.leukocytes

    @property
    def blast_count(self) -> int:
        return sum(self.counts.get(name, 0) for name in self.positives)

    @property
    def blast_percent(self) -> float | None:
        """Blasts as a percentage of :attr:`leukocytes`.

        None when there is no classified white cell, or when nothing could
        have called a blast: a 0 % there would read as "no blasts seen".
        """
        if not self.leukocytes or not (self.can_call_blast or self.reviewed):
            return None
        return 100.0 * self.blast_count / self.leukocytes


def differential_count(
    cells: Sequence[Cell], models: Sequence[ModelRun], threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
) -> Differential:
    """Count the review cells per class, reviewer corrections included.

    Parameters
    ----------
    cells : sequence of Cell
        All cells of the field (red cells and platelets are skipped unless reviewed).
    models : sequence of ModelRun
        The models that ran, as recorded in the analysis.
    threshold : float
        For :attr:`Differential.flagged`.

    Returns
    -------
    Differential
    """
    classes = review_classes(models)
    positives = positive_classes(models)
    can_call = bool(blast_callers(models))
    result = Differential(
        classes=classes, counts=dict.fromkeys(classes, 0), positives=positives, can_call_blast=can_call
    )
    for cell in review_cells(cells):
        call = call_cell(cell, models, threshold)
        result.total += 1
        result.reviewed += int(call.reviewed)
        result.flagged += int(call.needs_review)
        if call.label is None:
            result.unclassified += 1
            continue
        if call.atypical:
            result.atypical += 1
            continue
        if call.label not in result.counts:  # a label from an older model version: keep it visible
            classes.insert(len(classes) - 1, call.label)
            result.counts[call.label] = 0
        result.counts[call.label] += 1
        if call.label not in NON_LEUKOCYTE:
            result.leukocytes += 1
    return result


def blast_percentage(
    cells: Sequence[Cell], models: Sequence[ModelRun], threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
) -> float | None:
    """:attr:`Differential.blast_percent` of these cells."""
    return differential_count(cells, models, threshold).blast_percent


@dataclass(frozen=True)
class DifferentialRow:
    """One class of the differential as the report and the panel show it.

    Attributes
    ----------
    name, display, abbreviation, colour : str
    count : int
        Cells of this class (model labels that are its aliases included).
    percent : float or None
        Of the white-cell total; None for classes counted apart, or no total.
    per_100_wbc : float or None
        For classes reported per 100 white cells (NRBC).
    counted : bool
        Part of the white-cell total.
    """

    name: str
    display: str
    abbreviation: str
    colour: str
    count: int
    percent: float | None
    per_100_wbc: float | None
    counted: bool


def differential_rows(diff: Differential) -> tuple[list[DifferentialRow], list[DifferentialRow]]:
    """The differential's rows in the list's clinical order: (in the white-cell total, counted apart).

    Model labels that are aliases of a class are counted in its row; classes
    the list does not count in the total (smudge cells, NRBC, platelets,
    artefacts) come apart, NRBC also per 100 white cells.
    """
    lab = active_classes()
    folded: dict[str, int] = {}
    for name in diff.classes:
        canonical = lab.canonical(name)
        folded[canonical] = folded.get(canonical, 0) + diff.counts.get(name, 0)
    total = diff.leukocytes
    counted: list[DifferentialRow] = []
    apart: list[DifferentialRow] = []
    for name, count in folded.items():
        known = lab.get(name)
        in_total = name not in NON_LEUKOCYTE
        row = DifferentialRow(
            name=name,
            display=display_name(name),
            abbreviation=abbreviation(name),
            colour=class_colour(name),
            count=count,
            percent=100.0 * count / total if in_total and total else None,
            per_100_wbc=100.0 * count / total if known is not None and known.per_100_wbc and total else None,
            counted=in_total,
        )
        (counted if in_total else apart).append(row)
    return counted, apart
