"""Entry point of the dashboard: ``streamlit run app/Home.py`` (or ``interp app``).

The pages are built in :mod:`views` (next to this file) from the analysis registry;
see its docstring for the ``dashboard(result, st)`` hook an analysis can provide.
"""

import sys
from pathlib import Path

_APP_DIR = str(Path(__file__).resolve().parent)
if _APP_DIR not in sys.path:  # `streamlit run` adds it; AppTest and other launchers may not
    sys.path.insert(0, _APP_DIR)

import views  # noqa: E402

views.main()
