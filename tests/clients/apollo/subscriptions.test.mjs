// Subscriptions through Apollo: multipart over HttpLink, graphql-transport-ws over GraphQLWsLink.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, test } from "node:test";

import { CombinedGraphQLErrors, gql } from "@apollo/client";

import {
  TEST_TIMEOUT_MS,
  boundedFetch,
  collect,
  deferred,
  disposeWs,
  failure,
  httpClient,
  registerUser,
  take,
  within,
  wsApolloClient,
  wsClient,
} from "./support.mjs";

const ORDER_ATTEMPTS = 8;
const ORDER_WAIT_MS = 1_000;

const QUOTES = gql`
  subscription Quotes($symbols: [String!]!) {
    quotes(symbols: $symbols) {
      symbol
      bidPrice
      askPrice
      timestamp
    }
  }
`;

const ORDER_UPDATES = gql`
  subscription OrderUpdates {
    orderUpdates {
      event
      order {
        id
        clientOrderId
        symbol
        status
      }
    }
  }
`;

const ME = gql`
  query Me {
    me {
      username
    }
  }
`;

const PLACE_ORDER = gql`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      order {
        clientOrderId
      }
      userErrors {
        code
      }
    }
  }
`;

let user;

before(async () => {
  user = await registerUser("apollo-subscriptions");
});

/** Apollo over HttpLink with a fetch that keeps every request and response it makes. */
function recordingHttpClient(accessToken) {
  const exchanges = [];
  const recordingFetch = async (url, options) => {
    const response = await boundedFetch(url, options);
    exchanges.push({ accept: new Headers(options.headers).get("accept"), signal: options.signal, response });
    return response;
  };
  return { client: httpClient(accessToken, recordingFetch), exchanges };
}

test("HttpLink streams quotes over multipart HTTP until unsubscribed", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { client, exchanges } = recordingHttpClient(user.accessToken);
  try {
    const quotes = await take(
      client.subscribe({ query: QUOTES, variables: { symbols: ["AAPL"] } }),
      2,
      "two multipart quotes",
    );

    for (const { quotes: quote } of quotes) {
      assert.equal(quote.symbol, "AAPL");
      assert.match(quote.bidPrice, /^\d+\.\d{2}$/);
    }
    assert.ok(Date.parse(quotes[1].quotes.timestamp) > Date.parse(quotes[0].quotes.timestamp));

    const [exchange] = exchanges;
    assert.match(exchange.accept, /^multipart\/mixed;boundary=graphql;subscriptionSpec=1\.0,/);
    assert.equal(exchange.response.status, 200);
    assert.match(exchange.response.headers.get("content-type"), /^multipart\/mixed;\s*boundary="?graphql"?;/);
    // Unsubscribing (done by `take`) aborts the streaming request.
    assert.equal(exchange.signal.aborted, true);
  } finally {
    client.stop();
  }
});

test("a multipart subscription without a token ends with UNAUTHENTICATED", { timeout: TEST_TIMEOUT_MS }, async () => {
  const client = httpClient();
  try {
    const error = await failure(
      client.subscribe({ query: QUOTES, variables: { symbols: ["AAPL"] } }),
      "anonymous multipart subscription",
    );

    assert.ok(CombinedGraphQLErrors.is(error), `not GraphQL errors: ${error}`);
    assert.equal(error.errors[0].extensions.code, "UNAUTHENTICATED");
  } finally {
    client.stop();
  }
});

test("GraphQLWsLink: connectionParams sign in, your order updates only", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { promise: isConnected, resolve: connected } = deferred();
  const ws = wsClient(`Bearer ${user.accessToken}`, { connected });
  const client = wsApolloClient(ws);
  const http = httpClient(user.accessToken);
  const stranger = httpClient((await registerUser("apollo-stranger")).accessToken);
  let updates;
  try {
    const me = await within(client.query({ query: ME, fetchPolicy: "no-cache" }), "me over WebSocket");
    assert.equal(me.data.me.username, user.username);
    await within(isConnected, "the WebSocket connection");

    updates = collect(client.subscribe({ query: ORDER_UPDATES }));
    const placed = new Set();
    const place = async (orderer) => {
      const input = { symbol: "AAPL", side: "BUY", qty: "1", clientOrderId: `apollo-ws-${randomUUID()}` };
      const { data } = await within(orderer.mutate({ mutation: PLACE_ORDER, variables: { input } }), "placeOrder");
      assert.deepEqual(data.placeOrder.userErrors, []);
      return input.clientOrderId;
    };
    // A subscription is not acknowledged: place orders until the first update shows it listens.
    let listening = false;
    for (let attempt = 0; attempt < ORDER_ATTEMPTS && !listening; attempt += 1) {
      placed.add(await place(http));
      listening = await updates.until(() => true, ORDER_WAIT_MS);
    }
    assert.ok(listening, `no order update after ${placed.size} orders`);
    // Someone else's order, then one more of ours: only ours may arrive.
    await place(stranger);
    const last = await place(http);
    placed.add(last);
    const arrived = await updates.until((result) => result.data?.orderUpdates.order.clientOrderId === last);
    assert.ok(arrived, `no update of the last order; got ${JSON.stringify(updates.results)}`);

    for (const result of updates.results) {
      assert.equal(result.error, undefined, `the subscription failed: ${result.error}`);
      const { event, order } = result.data.orderUpdates;
      assert.ok(placed.has(order.clientOrderId), `an update of someone else's order: ${order.clientOrderId}`);
      assert.equal(order.symbol, "AAPL");
      assert.ok(["new", "fill"].includes(event), `unexpected event ${event}`);
    }
  } finally {
    updates?.unsubscribe();
    client.stop();
    http.stop();
    stranger.stop();
    await disposeWs(ws);
  }
});

test("a bad token in connectionParams closes the socket with 4403", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { promise: closeEvent, resolve: closed } = deferred();
  const ws = wsClient("Bearer not-a-token", { closed });
  const client = wsApolloClient(ws);
  try {
    const error = await failure(client.subscribe({ query: ORDER_UPDATES }), "subscription with a bad token");
    const event = await within(closeEvent, "the close event");

    assert.equal(event.code, 4403);
    assert.match(error.message, /Socket closed with event 4403/);
  } finally {
    client.stop();
    await disposeWs(ws);
  }
});
