import { GraphiQL } from 'graphiql';
import { useEffect, useMemo, useState } from 'react';

import { signOut } from './api.js';
import { createFetcher } from './fetcher.js';
import { loadSession, saveSession } from './session.js';
import { SignIn } from './SignIn.jsx';

const DEFAULT_QUERY = `# Sign in above: every request then carries your access token, and so does the
# WebSocket that subscriptions use. Market data needs no sign-in.

{
  quote(symbol: "AAPL") {
    symbol
    bidPrice
    askPrice
    timestamp
  }
}
`;

export function App() {
  const [session, setSession] = useState(loadSession);
  const accessToken = session?.accessToken ?? null;
  const connection = useMemo(() => createFetcher(accessToken), [accessToken]);
  useEffect(() => connection.dispose, [connection]);

  function changeSession(next) {
    saveSession(next);
    setSession(next);
  }

  async function leave() {
    const ending = session;
    changeSession(null);
    await signOut(ending);
  }

  return (
    <div className="page">
      <header className="signin" aria-label="Session">
        <span className="signin-title">Alpaca GraphQL</span>
        {session ? (
          <>
            <span className="signin-who" data-testid="signed-in-as">
              Signed in as <strong>{session.user.username}</strong>
              {session.user.email ? <> ({session.user.email})</> : null}
            </span>
            <button type="button" onClick={leave}>Sign out</button>
          </>
        ) : (
          <SignIn onSession={changeSession} />
        )}
      </header>
      <main className="ide">
        <GraphiQL fetcher={connection.fetcher} defaultQuery={DEFAULT_QUERY} />
      </main>
    </div>
  );
}
