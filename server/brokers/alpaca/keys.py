"""Checking a pair of Alpaca keys against the broker before they are stored.

alpaca-py's clients are blocking (requests), retry 429s by sleeping, and set no request
timeout; so the check runs in a worker thread (a few at most), with alpaca-py's own
retries off and a timeout both on the HTTP request and on the wait for the thread.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from functools import partial

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from server.brokers.alpaca.rest import tame
from server.threads import WorkerSlots, WorkerTimeoutError

logger = logging.getLogger(__name__)
AUTH_FAILURE_STATUSES = {401, 403}
MAX_CONCURRENT_CHECKS = 4


class KeyVerdict(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the broker refused the keys
    UNAVAILABLE = "unavailable"  # the broker could not be asked


class AlpacaKeyChecker:
    def __init__(self, *, trading_url: str | None, timeout_seconds: float) -> None:
        self._trading_url = trading_url
        self._timeout = timeout_seconds
        self._workers = WorkerSlots(MAX_CONCURRENT_CHECKS, timeout_seconds=timeout_seconds + 1)

    async def check(self, api_key: str, secret_key: str, *, paper: bool) -> KeyVerdict:
        call = partial(self._fetch_account, api_key, secret_key, paper=paper)
        try:
            await self._workers.run(call)
        except APIError as error:
            if error.status_code in AUTH_FAILURE_STATUSES:
                return KeyVerdict.REJECTED
            logger.warning("broker key check failed", extra={"status": error.status_code})
            return KeyVerdict.UNAVAILABLE
        except (requests.RequestException, WorkerTimeoutError, ValueError) as error:
            logger.warning("broker key check failed", extra={"error": type(error).__name__})
            return KeyVerdict.UNAVAILABLE
        return KeyVerdict.ACCEPTED

    def _fetch_account(self, api_key: str, secret_key: str, *, paper: bool) -> None:
        client = TradingClient(api_key, secret_key, paper=paper, url_override=self._trading_url)
        tame(client, self._timeout)
        client.get_account()
