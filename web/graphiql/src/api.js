// Plain HTTP calls of the sign-in box; GraphiQL's own requests go through the fetcher (fetcher.js).

const LOGIN = `mutation SignIn($input: LoginInput!) {
  login(input: $input) {
    accessToken
    refreshToken
    user { username email }
    userErrors { message code }
  }
}`;

const ME = 'query WhoAmI { me { username email } }';

const LOGOUT = `mutation SignOut($refreshToken: String!) {
  logout(refreshToken: $refreshToken) { ok }
}`;

/** The GraphQL endpoint is the address this page was served from (GET /graphql). */
export function endpoint() {
  return new URL(window.location.pathname, window.location.origin).href;
}

export function websocketEndpoint() {
  const url = new URL(endpoint());
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

async function post(query, variables, token) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(endpoint(), {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
    credentials: 'omit',
    cache: 'no-store',
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`The server answered ${response.status} without a GraphQL response.`);
  }
  if (body.errors?.length) throw new Error(body.errors[0].message);
  if (!response.ok || !body.data) throw new Error(`The server answered ${response.status}.`);
  return body.data;
}

/** A session from a username (or email) and password; the password goes nowhere else. */
export async function signIn(username, password) {
  const { login } = await post(LOGIN, { input: { username, password } });
  if (login.userErrors.length || !login.accessToken) {
    throw new Error(login.userErrors[0]?.message ?? 'Sign-in failed.');
  }
  return { accessToken: login.accessToken, refreshToken: login.refreshToken, user: login.user };
}

/** A session from a pasted access token, once the server accepts it. */
export async function signInWithToken(accessToken) {
  const { me } = await post(ME, {}, accessToken);
  if (!me) throw new Error('The server did not accept this token.');
  return { accessToken, refreshToken: null, user: me };
}

/** End the server-side session too, when we hold its refresh token; failures do not matter. */
export async function signOut(session) {
  if (!session.refreshToken) return;
  try {
    await post(LOGOUT, { refreshToken: session.refreshToken }, session.accessToken);
  } catch {
    // The token may have expired or the server be gone: the page forgets the session anyway.
  }
}
