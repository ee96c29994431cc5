// The signed-in session lives in this tab's sessionStorage (never localStorage): it survives a
// reload but not closing the tab, and no other tab or later visit sees it.

const KEY = 'alpaca-graphql:session';

export function loadSession() {
  try {
    const session = JSON.parse(window.sessionStorage.getItem(KEY) ?? 'null');
    return typeof session?.accessToken === 'string' && session.user ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  try {
    if (session) window.sessionStorage.setItem(KEY, JSON.stringify(session));
    else window.sessionStorage.removeItem(KEY);
  } catch {
    // Storage may be disabled: the session then lasts as long as the page.
  }
}
