"""Records each test's outcome on its item, so that a fixture can print the cluster's view
(kubectl describe, logs) after a failure."""
import pytest


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
