// Queries through Apollo's HttpLink: public quotes, coded errors, and a signed-in user's account.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { CombinedGraphQLErrors, gql } from "@apollo/client";

import { TEST_TIMEOUT_MS, httpClient, registerUser, within } from "./support.mjs";

const PRICE = /^\d+\.\d{2}$/;

const QUOTE = gql`
  query Quote($symbol: String!) {
    quote(symbol: $symbol) {
      symbol
      bidPrice
      askPrice
      timestamp
    }
  }
`;

const QUOTES = gql`
  query Quotes($symbols: [String!]!) {
    quotes(symbols: $symbols) {
      symbol
      bidPrice
      askPrice
    }
  }
`;

const PORTFOLIO = gql`
  query Portfolio {
    me {
      id
      username
    }
    account {
      cash
      buyingPower
      equity
    }
    positions {
      symbol
      qty
    }
  }
`;

let user;
let anonymous;
let signedIn;

before(async () => {
  user = await registerUser("apollo-queries");
  anonymous = httpClient();
  signedIn = httpClient(user.accessToken);
});

after(() => {
  anonymous?.stop();
  signedIn?.stop();
});

test("a public quote has Decimal prices as strings and an ISO time", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { data } = await within(anonymous.query({ query: QUOTE, variables: { symbol: "AAPL" } }), "quote");

  assert.equal(data.quote.__typename, "Quote");
  assert.equal(data.quote.symbol, "AAPL");
  assert.match(data.quote.bidPrice, PRICE);
  assert.match(data.quote.askPrice, PRICE);
  assert.ok(Number(data.quote.bidPrice) < Number(data.quote.askPrice));
  assert.ok(!Number.isNaN(Date.parse(data.quote.timestamp)));
});

test("quotes come back in the order asked", { timeout: TEST_TIMEOUT_MS }, async () => {
  const symbols = ["SPY", "QQQ", "BRK.B"];
  const { data } = await within(anonymous.query({ query: QUOTES, variables: { symbols } }), "quotes");

  assert.deepEqual(
    data.quotes.map((quote) => quote.symbol),
    symbols,
  );
});

test("an unknown symbol rejects with its code", { timeout: TEST_TIMEOUT_MS }, async () => {
  const query = anonymous.query({ query: QUOTE, variables: { symbol: "ZZZZ" } });

  await assert.rejects(within(query, "quote of ZZZZ"), (error) => {
    assert.ok(CombinedGraphQLErrors.is(error), `not GraphQL errors: ${error}`);
    assert.equal(error.errors[0].extensions.code, "BAD_USER_INPUT");
    assert.deepEqual(error.errors[0].path, ["quote"]);
    return true;
  });
});

test("a signed-in user sees their own fresh paper account", { timeout: TEST_TIMEOUT_MS }, async () => {
  const { data } = await within(signedIn.query({ query: PORTFOLIO }), "account");

  assert.equal(data.me.username, user.username);
  assert.equal(data.me.id, user.userId);
  assert.equal(data.account.cash, "100000.00");
  assert.deepEqual(data.positions, []);
});

test("the account needs a signed-in user", { timeout: TEST_TIMEOUT_MS }, async () => {
  await assert.rejects(within(anonymous.query({ query: PORTFOLIO }), "anonymous account"), (error) => {
    assert.ok(CombinedGraphQLErrors.is(error), `not GraphQL errors: ${error}`);
    assert.ok(error.errors.some((e) => e.extensions.code === "UNAUTHENTICATED"));
    return true;
  });
});
