// Mutations through Apollo's HttpLink: refusals as userErrors, an order that fills, sign-in.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { gql } from "@apollo/client";

import { PASSWORD, TEST_TIMEOUT_MS, httpClient, registerUser, within } from "./support.mjs";

const PLACE_ORDER = gql`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      order {
        id
        clientOrderId
        symbol
        side
        status
        qty
        filledQty
        filledAvgPrice
      }
      userErrors {
        field
        message
        code
      }
    }
  }
`;

const POSITION = gql`
  query Position($symbol: String!) {
    position(symbol: $symbol) {
      symbol
      qty
      side
    }
  }
`;

const LOGIN = gql`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      accessToken
      user {
        username
      }
      userErrors {
        field
        code
      }
    }
  }
`;

let user;
let client;

before(async () => {
  user = await registerUser("apollo-mutations");
  client = httpClient(user.accessToken);
});

after(() => client?.stop());

test("an invalid order comes back as userErrors with field and code", { timeout: TEST_TIMEOUT_MS }, async () => {
  const input = { symbol: "AAPL", side: "BUY", type: "LIMIT", qty: "1" };
  const { data } = await within(client.mutate({ mutation: PLACE_ORDER, variables: { input } }), "placeOrder");

  assert.equal(data.placeOrder.order, null);
  assert.deepEqual(
    data.placeOrder.userErrors.map(({ field, code }) => ({ field, code })),
    [{ field: ["input", "limitPrice"], code: "LIMIT_PRICE_REQUIRED" }],
  );
  assert.equal(data.placeOrder.userErrors[0].__typename, "UserError");
});

test("a market order fills and becomes a position", { timeout: TEST_TIMEOUT_MS }, async () => {
  const clientOrderId = `apollo-${randomUUID()}`;
  const input = { symbol: "MSFT", side: "BUY", qty: "3", clientOrderId };
  const { data } = await within(client.mutate({ mutation: PLACE_ORDER, variables: { input } }), "placeOrder");

  assert.deepEqual(data.placeOrder.userErrors, []);
  const order = data.placeOrder.order;
  assert.equal(order.clientOrderId, clientOrderId);
  assert.equal(order.symbol, "MSFT");
  assert.equal(order.side, "BUY");
  assert.equal(order.status, "FILLED");
  assert.equal(order.filledQty, "3");
  assert.match(order.filledAvgPrice, /^\d+(\.\d+)?$/);

  const position = await within(
    client.query({ query: POSITION, variables: { symbol: "MSFT" } }),
    "position",
  );
  assert.deepEqual(
    { symbol: position.data.position.symbol, qty: position.data.position.qty, side: position.data.position.side },
    { symbol: "MSFT", qty: "3", side: "LONG" },
  );
});

test("the same clientOrderId returns the first order", { timeout: TEST_TIMEOUT_MS }, async () => {
  const input = { symbol: "AAPL", side: "BUY", qty: "1", clientOrderId: `apollo-${randomUUID()}` };
  const place = () => within(client.mutate({ mutation: PLACE_ORDER, variables: { input } }), "placeOrder");

  const first = await place();
  const second = await place();

  assert.equal(second.data.placeOrder.order.id, first.data.placeOrder.order.id);
});

test("login refuses a wrong password as a userError, then signs in", { timeout: TEST_TIMEOUT_MS }, async () => {
  const anonymous = httpClient();
  try {
    const login = (password) =>
      within(
        anonymous.mutate({ mutation: LOGIN, variables: { input: { username: user.username, password } } }),
        "login",
      );

    const refused = await login("not-the-Password-99");
    const accepted = await login(PASSWORD);

    assert.equal(refused.data.login.accessToken, null);
    assert.deepEqual(refused.data.login.userErrors.map(({ field, code }) => ({ field, code })), [
      { field: null, code: "INVALID_CREDENTIALS" },
    ]);
    assert.equal(accepted.data.login.user.username, user.username);
    assert.deepEqual(accepted.data.login.userErrors, []);
    assert.match(accepted.data.login.accessToken, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  } finally {
    anonymous.stop();
  }
});
