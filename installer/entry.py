"""Entry script of the frozen bundle: the same ``main`` as the ``leukview`` console script."""

import multiprocessing
import sys

from leukview.__main__ import main

if __name__ == "__main__":
    # A frozen child process started by multiprocessing must not re-run the app.
    multiprocessing.freeze_support()
    sys.exit(main())
