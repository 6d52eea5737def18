"""Teaching mode: quizzes for trainees on reference cells or on a trainer's case.

``leukview --teach [QUIZ]`` opens :class:`QuizWindow` on the default atlas of
the installed type model (:func:`atlas_source`) or on a quiz file; the main
window's File > Make quiz from this case writes such a file
(:func:`leukview.core.quiz.quiz_from_cells`). The quiz model itself is
Qt-free: :mod:`leukview.core.quiz`.
"""

from ._sources import AtlasChoice, atlas_source, file_source, model_loader
from .window import CELL_SIDE, QuizWindow

__all__ = ["CELL_SIDE", "AtlasChoice", "QuizWindow", "atlas_source", "file_source", "model_loader"]
