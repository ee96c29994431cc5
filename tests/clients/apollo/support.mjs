// What every Apollo test needs: the server's address, bounded waits, signed-in users and clients.
import { randomUUID } from "node:crypto";

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

export const WAIT_MS = 5_000;
// Longer than WAIT_MS, so a wait reports what it waited for before its request is aborted.
const REQUEST_TIMEOUT_MS = 10_000;
export const TEST_TIMEOUT_MS = 30_000;
export const PASSWORD = "tidal-Orbit-57-marmalade";

export const GRAPHQL_URL = process.env.GRAPHQL_URL;
if (!GRAPHQL_URL) {
  throw new Error("Set GRAPHQL_URL, e.g. http://127.0.0.1:8081/graphql");
}
export const WS_URL = GRAPHQL_URL.replace(/^http/, "ws");

const REGISTER = gql`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      accessToken
      user {
        id
        username
      }
      userErrors {
        field
        message
        code
      }
    }
  }
`;

/** `promise`, or a rejection naming `what` once `ms` have passed. */
export async function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * fetch whose exchange, body included, is aborted after REQUEST_TIMEOUT_MS: a server that never
 * answers cannot keep the test process alive. A plain timer: on Node 20 an AbortSignal.timeout
 * combined by AbortSignal.any is lost to garbage collection and never fires.
 */
export function boundedFetch(url, options = {}) {
  const controller = new AbortController();
  const expire = () => controller.abort(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`));
  setTimeout(expire, REQUEST_TIMEOUT_MS).unref();
  const caller = options.signal;
  if (caller?.aborted) {
    controller.abort(caller.reason);
  }
  caller?.addEventListener("abort", () => controller.abort(caller.reason), { once: true });
  return fetch(url, { ...options, signal: controller.signal });
}

/** ws, giving up on a handshake the server never answers. */
class BoundedWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { handshakeTimeout: WAIT_MS });
  }
}

/** A promise and the function that resolves it (Node 20 has no Promise.withResolvers). */
export function deferred() {
  let resolve;
  const promise = new Promise((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

/** An Apollo client over HTTP (queries, mutations, multipart subscriptions), signed in when given a token. */
export function httpClient(accessToken, fetch = boundedFetch) {
  const headers = accessToken ? { authorization: `Bearer ${accessToken}` } : {};
  return new ApolloClient({
    link: new HttpLink({ uri: GRAPHQL_URL, headers, fetch }),
    cache: new InMemoryCache(),
    defaultOptions: { query: { fetchPolicy: "no-cache" } },
  });
}

/** A graphql-ws client whose connection_init carries `authorization`; it never retries. */
export function wsClient(authorization, on = {}) {
  return createClient({
    url: WS_URL,
    webSocketImpl: BoundedWebSocket,
    connectionParams: () => ({ authorization }),
    connectionAckWaitTimeout: WAIT_MS,
    retryAttempts: 0,
    on,
  });
}

/** Closes a graphql-ws client; a socket that never opened is closed already (dispose rethrows its error). */
export async function disposeWs(client) {
  await client.dispose().catch(() => {});
}

/** An Apollo client whose only link is `GraphQLWsLink` over `client`. */
export function wsApolloClient(client) {
  return new ApolloClient({ link: new GraphQLWsLink(client), cache: new InMemoryCache() });
}

/** A new user (a unique name per call), registered through Apollo; returns its access token and id. */
export async function registerUser(prefix) {
  const username = `${prefix}-${randomUUID().slice(0, 8)}`;
  const client = httpClient();
  try {
    const { data } = await within(
      client.mutate({
        mutation: REGISTER,
        variables: { input: { username, email: `${username}@example.com`, password: PASSWORD } },
      }),
      "register",
    );
    const payload = data.register;
    if (payload.userErrors.length > 0) {
      throw new Error(`register refused: ${JSON.stringify(payload.userErrors)}`);
    }
    return { username, userId: payload.user.id, accessToken: payload.accessToken };
  } finally {
    client.stop();
  }
}

/**
 * The first `count` results of an Apollo subscription observable, then unsubscribes.
 * A result carrying an error, an error or an early completion rejects.
 */
export function take(observable, count, what, ms = WAIT_MS) {
  const results = [];
  let subscription;
  const collected = new Promise((resolve, reject) => {
    subscription = observable.subscribe({
      next(result) {
        if (result.error) {
          reject(result.error);
          return;
        }
        results.push(result.data);
        if (results.length === count) {
          resolve(results);
        }
      },
      error: reject,
      complete: () => reject(new Error(`${what} completed after ${results.length} of ${count} results`)),
    });
  });
  return within(collected, what, ms).finally(() => subscription.unsubscribe());
}

/** The error that ends an Apollo subscription (as a result's `error` or the observable's error). */
export function failure(observable, what, ms = WAIT_MS) {
  let subscription;
  const failed = new Promise((resolve, reject) => {
    subscription = observable.subscribe({
      next(result) {
        if (result.error) {
          resolve(result.error);
        } else {
          reject(new Error(`${what} delivered data: ${JSON.stringify(result.data)}`));
        }
      },
      error: resolve,
      complete: () => reject(new Error(`${what} completed without an error`)),
    });
  });
  return within(failed, what, ms).finally(() => subscription.unsubscribe());
}

/**
 * Keeps every result of an Apollo subscription observable (an error as `{ error }`).
 * `until(predicate, ms)` resolves true once a kept result matches, false after `ms`.
 */
export function collect(observable) {
  const results = [];
  const waiters = new Set();
  const keep = (result) => {
    results.push(result);
    for (const waiter of waiters) {
      waiter();
    }
  };
  const subscription = observable.subscribe({ next: keep, error: (error) => keep({ error }) });
  const until = (predicate, ms = WAIT_MS) =>
    new Promise((resolve) => {
      const finish = (matched) => {
        clearTimeout(timer);
        waiters.delete(check);
        resolve(matched);
      };
      const check = () => results.some(predicate) && finish(true);
      const timer = setTimeout(() => finish(false), ms);
      waiters.add(check);
      check();
    });
  return { results, until, unsubscribe: () => subscription.unsubscribe() };
}
