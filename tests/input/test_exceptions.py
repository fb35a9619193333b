"""The exception hierarchy: every misuse is a UsageError (a ValueError),
every exception of the package an HttpAsyncClientError, with the extra
builtin bases callers catch (TypeError, KeyError, TimeoutError,
RuntimeError)."""

from __future__ import annotations

import pytest

import http_async_client as hac

MISUSE = [
    hac.InvalidURL,
    hac.InvalidMethod,
    hac.InvalidHeader,
    hac.InvalidOption,
    hac.InvalidOptionType,
    hac.UnknownRequestKey,
]
OTHERS = [
    hac.ClientClosed,
    hac.WaitTimeout,
    hac.TransferError,
    hac.TransferTimeout,
    hac.Cancelled,
    hac.HTTPStatusError,
]


@pytest.mark.parametrize("exc", MISUSE)
def test_misuse_exceptions_are_usage_errors(exc: type[Exception]) -> None:
    """Every misuse exception is a UsageError, hence a ValueError and an
    HttpAsyncClientError."""
    assert issubclass(exc, hac.UsageError)
    assert issubclass(exc, ValueError)
    assert issubclass(exc, hac.HttpAsyncClientError)


@pytest.mark.parametrize("exc", MISUSE + OTHERS + [hac.UsageError])
def test_every_exception_derives_from_base(exc: type[Exception]) -> None:
    """Every exception class of the package derives from HttpAsyncClientError."""
    assert issubclass(exc, hac.HttpAsyncClientError)
    assert issubclass(exc, Exception)


def test_exception_extra_bases() -> None:
    """Type errors are TypeErrors, unknown keys KeyErrors, timeouts
    TimeoutErrors, a closed client a RuntimeError."""
    assert issubclass(hac.UsageError, ValueError)
    assert issubclass(hac.InvalidOptionType, TypeError)
    assert issubclass(hac.InvalidOptionType, hac.InvalidOption)
    assert issubclass(hac.UnknownRequestKey, KeyError)
    assert issubclass(hac.UnknownRequestKey, hac.InvalidOption)
    assert issubclass(hac.WaitTimeout, TimeoutError)
    assert issubclass(hac.TransferTimeout, hac.TransferError)
    assert issubclass(hac.TransferTimeout, TimeoutError)
    assert issubclass(hac.Cancelled, hac.TransferError)
    assert issubclass(hac.HTTPStatusError, hac.TransferError)
    assert issubclass(hac.ClientClosed, RuntimeError)
    assert not issubclass(hac.TransferError, hac.UsageError)


def test_all_exported_exceptions_covered() -> None:
    """Every exception class exported by the package is in this file's lists."""
    exported = {
        getattr(hac, name) for name in hac.__all__
        if isinstance(getattr(hac, name), type)
        and issubclass(getattr(hac, name), BaseException)
    }
    assert exported == set(MISUSE + OTHERS + [hac.UsageError, hac.HttpAsyncClientError])
