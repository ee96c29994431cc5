"""AlpacaBroker: one Alpaca account (the user's own keys) behind the Broker protocol.

REST goes through alpaca-py's TradingClient, StockHistoricalDataClient and
OptionHistoricalDataClient via `AlpacaRest` (worker threads, timeouts, retries, the
account's rate limit); trade updates come from `TradeUpdatesStream`, started with the
first listener. `AlpacaBrokers` holds what every account shares: where Alpaca is, the
worker pool, and one limiter per API key (two connections with one key are one account
to Alpaca).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import partial
from uuid import UUID

from aiolimiter import AsyncLimiter
from alpaca.common.enums import Sort
from alpaca.data.enums import DataFeed, OptionsFeed
from alpaca.data.requests import OptionChainRequest, OptionLatestQuoteRequest, StockLatestQuoteRequest
from alpaca.trading.enums import AssetClass as AlpacaAssetClass
from alpaca.trading.enums import AssetStatus, QueryOrderStatus
from alpaca.trading.requests import GetAssetsRequest, GetOrdersRequest

from server.brokers.alpaca import convert
from server.brokers.alpaca.rest import (
    AlpacaClients,
    AlpacaEndpoints,
    AlpacaKeys,
    AlpacaRest,
    CallPolicy,
    account_limiter,
    build_clients,
)
from server.brokers.alpaca.trade_stream import TradeUpdatesStream
from server.brokers.base import (
    BrokerRateLimitedError,
    BrokerUnavailableError,
    NotFoundError,
    OrderRejectedError,
    TradeUpdateListener,
    UnknownSymbolError,
)
from server.brokers.domain import (
    Account,
    Asset,
    MarketClock,
    OptionContract,
    OptionType,
    Order,
    OrderRequest,
    Position,
    Quote,
    ReplaceRequest,
    TradeUpdate,
)
from server.brokers.symbols import is_option_symbol
from server.metrics import UpstreamStream
from server.threads import WorkerSlots

logger = logging.getLogger(__name__)
ORDERS_PAGE = 500  # Alpaca's most per page
ONE_MICROSECOND = timedelta(microseconds=1)
MAX_ORDER_PAGES = 20
QUOTE_BATCH = 200
PAPER_TRADING_STREAM = "wss://paper-api.alpaca.markets/stream"
LIVE_TRADING_STREAM = "wss://api.alpaca.markets/stream"


def trading_stream_url(endpoints: AlpacaEndpoints, *, paper: bool) -> str:
    if endpoints.trading_stream_url:
        return endpoints.trading_stream_url
    if endpoints.trading_url:  # the same host speaks both (Alpaca, the paper exchange's facade)
        base = endpoints.trading_url.rstrip("/")
        return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/stream"
    return PAPER_TRADING_STREAM if paper else LIVE_TRADING_STREAM


class AlpacaBrokers:
    def __init__(
        self, endpoints: AlpacaEndpoints, *, policy: CallPolicy, max_threads: int, requests_per_minute: int
    ) -> None:
        self.endpoints = endpoints
        self.policy = policy
        self._requests_per_minute = requests_per_minute
        self._threads = ThreadPoolExecutor(max_threads, thread_name_prefix="alpaca")
        self._workers = WorkerSlots(max_threads, timeout_seconds=policy.timeout_seconds + 1, executor=self._threads)
        self._limiters: dict[str, AsyncLimiter] = {}
        self._in_flight: dict[str, asyncio.Semaphore] = {}
        self._per_account = max(1, max_threads // 2)

    def close(self) -> None:
        """Stop taking jobs; a thread still waiting on Alpaca ends at its request timeout."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    def rest(self, keys: AlpacaKeys, *, keep: bool = True) -> AlpacaRest:
        """The account's calls. `keep=False` for a one-off (checking keys): its rate bucket
        and thread share are not remembered, so refused keys leave nothing behind."""
        limiter = self._limiters.get(keys.api_key)
        in_flight = self._in_flight.get(keys.api_key)
        if limiter is None or in_flight is None:
            limiter = account_limiter(self._requests_per_minute)
            in_flight = asyncio.Semaphore(self._per_account)
            if keep:
                self._limiters[keys.api_key], self._in_flight[keys.api_key] = limiter, in_flight
        make = partial(build_clients, self.endpoints, keys, self.policy.timeout_seconds)
        return AlpacaRest(make, self._workers, limiter, self.policy, in_flight)

    def broker(
        self,
        keys: AlpacaKeys,
        *,
        on_resume: Callable[[], Awaitable[None]] | None = None,
        stream_gauge: UpstreamStream | None = None,
    ) -> AlpacaBroker:
        return AlpacaBroker(self.rest(keys), self.endpoints, keys, on_resume=on_resume, stream_gauge=stream_gauge)


class AlpacaMarketData:
    """Quotes, the clock, assets and option chains: what needs keys but no account of one's own."""

    def __init__(self, rest: AlpacaRest, endpoints: AlpacaEndpoints) -> None:
        self._rest = rest
        self._stock_feed = DataFeed(endpoints.stock_feed)
        self._option_feed = OptionsFeed(endpoints.option_feed)

    async def get_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        wanted = list(dict.fromkeys(symbols))
        stocks = [s for s in wanted if not is_option_symbol(s)]
        options = [s for s in wanted if is_option_symbol(s)]
        batches = [
            *(self._stock_quotes(stocks[i : i + QUOTE_BATCH]) for i in range(0, len(stocks), QUOTE_BATCH)),
            *(self._option_quotes(options[i : i + QUOTE_BATCH]) for i in range(0, len(options), QUOTE_BATCH)),
        ]
        found: dict[str, Quote] = {}
        for batch in await asyncio.gather(*batches):
            found.update(batch)
        unknown = [s for s in wanted if s not in found]
        if unknown:
            raise UnknownSymbolError(unknown)
        return found

    async def _stock_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        request = StockLatestQuoteRequest(symbol_or_symbols=symbols, feed=self._stock_feed)
        return await self._rest.call(lambda c: convert.quotes(c.stocks.get_stock_latest_quote(request)))

    async def _option_quotes(self, symbols: list[str]) -> dict[str, Quote]:
        request = OptionLatestQuoteRequest(symbol_or_symbols=symbols, feed=self._option_feed)
        return await self._rest.call(lambda c: convert.quotes(c.options.get_option_latest_quote(request)))

    async def ping(self) -> None:
        await self.clock()

    async def clock(self) -> MarketClock:
        return await self._rest.call(lambda c: convert.clock(c.trading.get_clock()))

    async def list_assets(self) -> list[Asset]:
        request = GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AlpacaAssetClass.US_EQUITY)
        return await self._rest.call(lambda c: [convert.asset(a) for a in c.trading.get_all_assets(request)])

    async def get_asset(self, symbol: str) -> Asset | None:
        def fetch(clients: AlpacaClients) -> Asset:
            if is_option_symbol(symbol):
                return convert.option_asset(clients.trading.get_option_contract(symbol))
            return convert.asset(clients.trading.get_asset(symbol))

        try:
            return await self._rest.call(fetch)
        except NotFoundError:
            return None

    async def option_chain(
        self, underlying: str, *, expiration: date | None = None, option_type: OptionType | None = None
    ) -> list[OptionContract]:
        request = OptionChainRequest(
            underlying_symbol=underlying,
            feed=self._option_feed,
            type=convert.contract_type(option_type),
            expiration_date=expiration,
        )
        try:
            return await self._rest.call(lambda c: convert.option_chain(c.options.get_option_chain(request)))
        except NotFoundError:
            return []


class AlpacaBroker(AlpacaMarketData):
    def __init__(
        self,
        rest: AlpacaRest,
        endpoints: AlpacaEndpoints,
        keys: AlpacaKeys,
        *,
        on_resume: Callable[[], Awaitable[None]] | None = None,
        stream_gauge: UpstreamStream | None = None,
    ) -> None:
        super().__init__(rest, endpoints)
        self._listeners: list[TradeUpdateListener] = []
        self._stream = TradeUpdatesStream(
            trading_stream_url(endpoints, paper=keys.paper),
            keys.api_key,
            keys.secret_key,
            self._deliver,
            on_resume=on_resume,
            gauge=stream_gauge,
        )

    @property
    def stream(self) -> TradeUpdatesStream:
        return self._stream

    async def get_account(self) -> Account:
        model, positions = await asyncio.gather(
            self._rest.call(lambda c: c.trading.get_account()), self.list_positions()
        )
        return convert.account(model, positions)  # a few fields: no thread needed

    async def list_positions(self) -> list[Position]:
        return await self._rest.call(lambda c: convert.positions(c.trading.get_all_positions()))

    async def get_position(self, symbol: str) -> Position | None:
        try:
            return await self._rest.call(lambda c: convert.position(c.trading.get_open_position(symbol)))
        except NotFoundError:
            return None

    async def submit_order(self, request: OrderRequest) -> Order:
        """Sent once; when no answer came back, the client order id tells whether it landed,
        and a resend is safe because Alpaca refuses a client order id it has seen."""
        try:
            return await self._submit(request)
        except BrokerRateLimitedError:  # refused before anything was done
            raise
        except BrokerUnavailableError:
            cid = request.client_order_id
            if cid is None:
                raise
            found = await self.get_order_by_client_id(cid)
            if found is not None:
                return found
        try:
            return await self._submit(request)
        except OrderRejectedError as refusal:
            found = await self.get_order_by_client_id(cid)
            if found is not None:
                return found
            if "client_order_id" in refusal.message:  # the first one landed where a look-up cannot see it yet
                raise BrokerUnavailableError("the order's fate is not known yet") from None
            raise

    async def _submit(self, request: OrderRequest) -> Order:
        body = convert.order_request(request)
        try:
            return await self._rest.call(lambda c: convert.order(c.trading.submit_order(body)), retry_failures=False)
        except NotFoundError as missing:  # Alpaca answers 404 for a symbol it does not list
            raise OrderRejectedError(f"{missing.what} not found", field="symbol") from None

    async def get_order(self, order_id: str) -> Order:
        key = _order_key(order_id)
        return await self._rest.call(lambda c: convert.order(c.trading.get_order_by_id(key)))

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            return await self._rest.call(lambda c: convert.order(c.trading.get_order_by_client_id(client_order_id)))
        except NotFoundError:
            return None

    async def list_orders(self, *, open_only: bool) -> list[Order]:
        """Every order (or every open one), newest first (as Alpaca and the paper exchange list
        them), legs listed as orders of their own."""
        status = QueryOrderStatus.OPEN if open_only else QueryOrderStatus.ALL
        orders: dict[str, Order] = {}
        until = None
        for _ in range(MAX_ORDER_PAGES):
            request = GetOrdersRequest(status=status, limit=ORDERS_PAGE, nested=False, direction=Sort.DESC, until=until)
            page = await self._rest.call(partial(_orders, request))
            known = len(orders)
            orders.update((o.id, o) for o in page)
            if len(page) < ORDERS_PAGE:
                break
            # `until` is exclusive. Orders of the page's oldest instant may go on past it, so the
            # next page starts just after that instant, unless doing so brought nothing new (then
            # the instant is done, as far as a page can show: Alpaca lists have no offset).
            oldest = min(o.submitted_at for o in page)
            until = oldest if len(orders) == known else oldest + ONE_MICROSECOND
        else:
            logger.warning("order list cut at %d pages", MAX_ORDER_PAGES)
        return sorted(orders.values(), key=lambda o: (o.created_at, o.id), reverse=True)

    async def cancel_order(self, order_id: str) -> Order:
        key = _order_key(order_id)
        await self._rest.call(lambda c: c.trading.cancel_order_by_id(key))
        return await self.get_order(order_id)

    async def replace_order(self, order_id: str, change: ReplaceRequest) -> Order:
        key = _order_key(order_id)
        body = convert.replace_request(change)
        return await self._rest.call(
            lambda c: convert.order(c.trading.replace_order_by_id(key, body)), retry_failures=False
        )

    def on_trade_update(self, listener: TradeUpdateListener) -> Callable[[], None]:
        self._listeners.append(listener)
        self._stream.start()

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def _deliver(self, update: TradeUpdate) -> None:
        for listener in list(self._listeners):
            listener(update)

    async def close(self) -> None:
        self._listeners.clear()
        await self._stream.stop()


def _order_key(order_id: str) -> UUID:
    """Alpaca's order ids are UUIDs, and alpaca-py refuses any other id before asking: such an id names no order."""
    try:
        return UUID(order_id)
    except ValueError:
        raise NotFoundError("order") from None


def _orders(request: GetOrdersRequest, clients: AlpacaClients) -> list[Order]:
    return [convert.order(order) for order in clients.trading.get_orders(request)]
