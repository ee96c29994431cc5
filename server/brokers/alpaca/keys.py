"""Checking a pair of Alpaca keys against the broker before they are stored: one account
request through the same machinery as every Alpaca call (worker threads, deadline,
retries), with a rate bucket of its own that is dropped afterwards, so keys that are
tried and refused leave nothing behind."""

from __future__ import annotations

import logging
from enum import StrEnum

from server.brokers.alpaca.broker import AlpacaBrokers
from server.brokers.alpaca.rest import AlpacaKeys
from server.brokers.base import BrokerAuthError, BrokerError

logger = logging.getLogger(__name__)


class KeyVerdict(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the broker refused the keys
    UNAVAILABLE = "unavailable"  # the broker could not be asked


class AlpacaKeyChecker:
    def __init__(self, alpaca: AlpacaBrokers) -> None:
        self._alpaca = alpaca

    async def check(self, api_key: str, secret_key: str, *, paper: bool) -> KeyVerdict:
        rest = self._alpaca.rest(AlpacaKeys(api_key, secret_key, paper=paper), keep=False)
        try:
            await rest.call(lambda clients: clients.trading.get_account())
        except BrokerAuthError:
            return KeyVerdict.REJECTED
        except BrokerError as error:
            logger.warning("broker key check failed", extra={"error": type(error).__name__})
            return KeyVerdict.UNAVAILABLE
        return KeyVerdict.ACCEPTED
