"""Dashboard panels, one per analysis (``panels/<analysis>.py``), each ``dashboard(result, st)``."""
