import { useState } from 'react';

import { signIn, signInWithToken } from './api.js';

/** Email (or username) and password, or a pasted access token; calls onSession with the result. */
export function SignIn({ onSession }) {
  const [mode, setMode] = useState('password');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const fields = new FormData(form);
    setBusy(true);
    setError(null);
    try {
      const session =
        mode === 'password'
          ? await signIn(String(fields.get('username')).trim(), String(fields.get('password')))
          : await signInWithToken(String(fields.get('token')).trim().replace(/^Bearer\s+/i, ''));
      form.reset(); // the password (or token) leaves no copy in the page
      onSession(session);
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  }

  function switchMode() {
    setMode(mode === 'password' ? 'token' : 'password');
    setError(null);
  }

  return (
    <form className="signin-form" onSubmit={submit} aria-label="Sign in">
      {mode === 'password' ? (
        <>
          <input name="username" aria-label="Email or username" placeholder="Email or username"
            autoComplete="username" required disabled={busy} />
          <input name="password" type="password" aria-label="Password" placeholder="Password"
            autoComplete="current-password" required disabled={busy} />
        </>
      ) : (
        <input name="token" type="password" aria-label="Access token" placeholder="Paste an access token"
          autoComplete="off" spellCheck={false} required disabled={busy} />
      )}
      <button type="submit" disabled={busy}>{mode === 'password' ? 'Sign in' : 'Use token'}</button>
      <button type="button" className="signin-switch" onClick={switchMode} disabled={busy}>
        {mode === 'password' ? 'Paste a token instead' : 'Use a password instead'}
      </button>
      {error ? <span className="signin-error" role="alert">{error}</span> : null}
    </form>
  );
}
