"""The dashboard tests' fixtures (a fake analysis with a panel, temporary runs and experiments
folders), shared with the reliability tests that drive the CLI and the dashboard."""

from tests.app.test_app import fake_analysis, fake_panel, roots  # noqa: F401
