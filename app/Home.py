"""Entry point of the dashboard: ``streamlit run app/Home.py`` (or ``interp app``).

The pages are built in :mod:`views` (next to this file) from the analysis registry; each
analysis's own panel is ``panels/<analysis>.py`` (see :mod:`views`), the helpers every page
shares are in :mod:`common`, and the live model explorer is :mod:`explorer`.
"""

import sys
from pathlib import Path

_APP_DIR = str(Path(__file__).resolve().parent)
if _APP_DIR not in sys.path:  # `streamlit run` adds it; AppTest and other launchers may not
    sys.path.insert(0, _APP_DIR)

import views  # noqa: E402

views.main()
