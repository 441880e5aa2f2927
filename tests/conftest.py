"""The whole suite: which tests share a pytest-xdist worker.

`./test.sh` runs two workers (`-n 2 --dist loadgroup`). A file's tests stay together in
one worker (module fixtures, order within a file), and the integration suite's files share
one worker, so one set of network namespaces serves them all. The role's tests are the
exception: each plays into its own temporary root and is the longest part of the run, so
they are spread over both workers one by one.
"""

from __future__ import annotations

import pytest

_SPREAD = ("tests/ansible/",)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if path.startswith(_SPREAD):
            continue
        group = "integration" if path.startswith("tests/integration/") else path
        item.add_marker(pytest.mark.xdist_group(group))
