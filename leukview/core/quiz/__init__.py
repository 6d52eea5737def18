"""Teaching quizzes, without Qt: items, a run with its timer, scores, trainees' records, quiz files.

A trainee sees cells without their labels and answers with the class keys of
review (:func:`leukview.core.keymap.class_keys` of the quiz's classes); each
answer is checked against the item's reference label (an expert's for atlas
cells, the reviewer's for a case) and the feedback shows that label, the
model's map and the most similar reference cells. At the end
:class:`QuizResult` gives the score by class and the confusion table.

* :class:`Quiz` and :class:`QuizItem`: what is asked. A quiz file
  (``*.leukquiz``, :meth:`Quiz.save` / :meth:`Quiz.load`) is one JSON
  document with everything embedded (JPEG crops, reference labels, optional
  class-activation maps and similar cells with their thumbnails), so another
  LeukView opens it offline, without the case or the atlas.
* :func:`quiz_from_atlas` (balanced by class, or weighted by a trainee's
  errors) and :func:`quiz_from_cells` / :func:`quiz_from_session` (the
  reviewed cells of a case with the reviewer's labels).
* :class:`QuizRun`: the flow (question -> feedback -> next ... -> done), the
  per-cell time limit of the timed mode, the answers.
* :class:`TraineeRecord`: one JSON file per trainee in the user's data folder
  (:func:`trainees_folder`, written atomically) with every attempt and a
  Leitner box per item; :func:`choose_items` uses it so that repeated
  quizzes favour the classes the trainee confuses and the cells they missed.

Layout: ``_items`` (the quiz, its cells, its file, choosing cells), ``_run``
(a run with its timer, scores, confusion), ``_trainee`` (a trainee's record
and Leitner boxes), ``_make`` (quizzes from an atlas or a case, and the
sources the teaching window draws from).
"""

from ._items import (
    QUIZ_FORMAT,
    QUIZ_SCHEMA_VERSION,
    QUIZ_SUFFIX,
    Quiz,
    QuizError,
    QuizItem,
    ReferenceCell,
    choose_items,
    ordered_classes,
)
from ._make import (
    ITEM_SIZE,
    AtlasQuizSource,
    FileQuizSource,
    cam_of_image,
    quiz_from_atlas,
    quiz_from_cells,
    quiz_from_session,
)
from ._run import NO_ANSWER, Answer, ClassScore, QuizResult, QuizRun
from ._trainee import (
    LEITNER_BOXES,
    TRAINEE_FORMAT,
    TRAINEES_ENV,
    TraineeRecord,
    trainee_file,
    trainees_folder,
)

__all__ = [
    "ITEM_SIZE",
    "LEITNER_BOXES",
    "NO_ANSWER",
    "QUIZ_FORMAT",
    "QUIZ_SCHEMA_VERSION",
    "QUIZ_SUFFIX",
    "TRAINEES_ENV",
    "TRAINEE_FORMAT",
    "Answer",
    "AtlasQuizSource",
    "ClassScore",
    "FileQuizSource",
    "Quiz",
    "QuizError",
    "QuizItem",
    "QuizResult",
    "QuizRun",
    "ReferenceCell",
    "TraineeRecord",
    "cam_of_image",
    "choose_items",
    "ordered_classes",
    "quiz_from_atlas",
    "quiz_from_cells",
    "quiz_from_session",
    "trainee_file",
    "trainees_folder",
]
