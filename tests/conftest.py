"""pytest's hooks for the Python suites in tests/ (test_*.py run by pytest-3).

tests/run.sh sums every runner's closing "N passed, M failed" line; pytest's own last line
("12 passed in 0.40s") is not one, so each pytest run prints it too. (tests/integration.py
is not a pytest suite: it has its own runner, one server per binary shared by its cases,
and binaries tested in parallel.)
"""


def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    skipped = len(stats.get("skipped", []))
    terminalreporter.write_line(f"{passed} passed, {failed} failed"
                                + (f", {skipped} skipped" if skipped else ""))
