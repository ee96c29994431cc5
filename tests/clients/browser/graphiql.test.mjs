// GraphiQL in headless Chromium against a running server (GRAPHIQL_SERVER_URL, e.g.
// http://127.0.0.1:8081): sign in through the page, run a quote query and a quote subscription,
// and prove that nothing was fetched from another host. Run by tests/clients/test_graphiql_browser.py.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { chromium } from 'playwright-core';

const SERVER = process.env.GRAPHIQL_SERVER_URL;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WAIT_MS = 20_000;
const LOCAL_HOSTS = new Set([new URL(SERVER ?? 'http://127.0.0.1').hostname, '127.0.0.1', 'localhost', '[::1]']);
const PASSWORD = 'tidal-Orbit-57-marmalade';

const QUERY = '{ me { username } quote(symbol: "AAPL") { symbol bidPrice askPrice } }';
const SUBSCRIPTION = 'subscription { quotes(symbols: ["AAPL"]) { symbol bidPrice askPrice timestamp } }';

async function graphql(query, variables) {
  const response = await fetch(new URL('/graphql', SERVER), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body));
  return body.data;
}

const register = (username, email) =>
  graphql('mutation($i: RegisterInput!) { register(input: $i) { userErrors { code } } }', {
    i: { username, email, password: PASSWORD },
  });
const login = (username) =>
  graphql('mutation($i: LoginInput!) { login(input: $i) { accessToken userErrors { code } } }', {
    i: { username, password: PASSWORD },
  });
const refresh = (refreshToken) =>
  graphql('mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken userErrors { code } } }', {
    t: refreshToken,
  });

/** Replace the query editor's text (typing into CodeMirror would fight its autocompletion), and wait
 * until GraphiQL has parsed it (it does so 100 ms after an edit): only then does it know a
 * subscription from a query and send it over the WebSocket. */
async function setQuery(page, query) {
  const editor = '.graphiql-query-editor .CodeMirror';
  await page.evaluate(([selector, text]) => document.querySelector(selector).CodeMirror.setValue(text), [editor, query]);
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector).CodeMirror.documentAST?.loc?.source.body === text,
    [editor, query],
    { timeout: WAIT_MS, polling: 50 },
  );
}

/** The result pane's JSON once it shows an AAPL quote in `field` (other than `notAt`), within a bounded wait. */
async function waitForQuote(page, field, what, notAt = null) {
  const handle = await page
    .waitForFunction(
      ([name, stale]) => {
        const text = document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue();
        let result;
        try {
          result = JSON.parse(text);
        } catch {
          return null;
        }
        const quote = result?.data?.[name];
        return quote?.symbol === 'AAPL' && (stale === null || quote.timestamp !== stale) ? result : null;
      },
      [field, notAt],
      { timeout: WAIT_MS, polling: 100 },
    )
    .catch(async (error) => {
      const shown = await page.evaluate(() => document.querySelector('.result-window')?.innerText ?? '(no result pane)');
      throw new Error(`${what}: not seen within ${WAIT_MS} ms; the result pane shows: ${shown}`, { cause: error });
    });
  return handle.jsonValue();
}

test('GraphiQL signs in, queries and subscribes without leaving this host', { timeout: 120_000 }, async (t) => {
  assert.ok(SERVER, 'GRAPHIQL_SERVER_URL must name the server under test');
  const username = `browser_${randomBytes(4).toString('hex')}`;
  const email = `${username}@example.com`;
  assert.deepEqual((await register(username, email)).register.userErrors, []);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium's sandbox cannot start as root (as in containers); elsewhere keep it.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    timeout: WAIT_MS,
  });
  t.after(() => browser.close());
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);

  const visited = [];
  const problems = [];
  const socketFrames = [];
  context.on('request', (request) => visited.push(request.url()));
  page.on('websocket', (socket) => {
    visited.push(socket.url());
    socket.on('framesent', (frame) => socketFrames.push(String(frame.payload)));
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
    });
  });

  await page.goto(new URL('/graphql', SERVER).href, { waitUntil: 'load' });
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
  // GraphiQL's dialogs inject <style> elements: the page's CSP must let them (style-src 'unsafe-inline').
  await page.getByRole('button', { name: 'Open settings dialog' }).click();
  await page.getByRole('dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });

  // A wrong password is refused, and says so; then sign in with the email and see who is signed in.
  await page.getByLabel('Email or username').fill(email);
  await page.getByLabel('Password').fill(`${PASSWORD}-wrong`);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').waitFor();
  await page.getByLabel('Email or username').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByTestId('signed-in-as').getByText(username, { exact: true }).waitFor();
  const session = await page.evaluate(() => JSON.parse(sessionStorage.getItem('alpaca-graphql:session')));
  const token = session.accessToken;
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);

  // A query over HTTP, carrying the token (`me` is the signed-in user).
  await setQuery(page, QUERY);
  await page.locator('.graphiql-execute-button').click();
  const answer = await waitForQuote(page, 'quote', 'the quote');
  assert.equal(answer.data.me?.username, username, JSON.stringify(answer));
  assert.match(answer.data.quote.bidPrice, /^\d+\.\d+$/);
  assert.match(answer.data.quote.askPrice, /^\d+\.\d+$/);

  // A subscription over the WebSocket: a first quote, then a later one replaces it.
  await setQuery(page, SUBSCRIPTION);
  await page.locator('.graphiql-execute-button').click();
  const first = await waitForQuote(page, 'quotes', 'a first live quote');
  const later = await waitForQuote(page, 'quotes', 'a live quote update', first.data.quotes.timestamp);
  assert.ok(Date.parse(later.data.quotes.timestamp) > Date.parse(first.data.quotes.timestamp));
  await page.locator('.graphiql-execute-button').click(); // stop the subscription

  const init = socketFrames.map((frame) => JSON.parse(frame)).find((message) => message.type === 'connection_init');
  assert.deepEqual(init?.payload, { authorization: `Bearer ${token}` });

  // The token stays in this tab's sessionStorage; the password is kept nowhere.
  const [local, tab] = await page.evaluate(() => [JSON.stringify({ ...localStorage }), JSON.stringify({ ...sessionStorage })]);
  assert.ok(!local.includes(token), 'the access token must not reach localStorage');
  assert.ok(!(local + tab).includes(PASSWORD), 'the password must not be stored');

  // Signing out forgets the session and ends it on the server (its refresh token is spent).
  const loggedOut = page.waitForResponse((response) => response.request().postData()?.includes('SignOut') ?? false);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await loggedOut;
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('alpaca-graphql:session')), null);
  assert.equal((await refresh(session.refreshToken)).refreshToken.accessToken, null);

  // A pasted access token signs in too.
  const { accessToken: pasted } = (await login(username)).login;
  await page.getByRole('button', { name: 'Paste a token instead' }).click();
  await page.getByLabel('Access token').fill(pasted);
  await page.getByRole('button', { name: 'Use token' }).click();
  await page.getByTestId('signed-in-as').getByText(username, { exact: true }).waitFor();

  const foreign = visited.filter((url) => {
    const { protocol, hostname } = new URL(url);
    return !['data:', 'blob:', 'about:'].includes(protocol) && !LOCAL_HOSTS.has(hostname);
  });
  assert.deepEqual(foreign, [], 'the page must work offline: nothing from another host');
  assert.ok(visited.some((url) => url.startsWith('ws://')), 'the subscription used a WebSocket');
  assert.deepEqual(problems, []);
});
