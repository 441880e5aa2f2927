"""Fixtures: backends that live for one test and are always stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.harness import TcpEcho, UdpEcho


@pytest.fixture
def tcp_echo() -> Iterator[TcpEcho]:
    echo = TcpEcho().start()
    yield echo
    echo.stop()


@pytest.fixture
def udp_echo() -> Iterator[UdpEcho]:
    echo = UdpEcho().start()
    yield echo
    echo.stop()
