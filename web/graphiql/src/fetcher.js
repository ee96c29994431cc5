import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';

import { endpoint, websocketEndpoint } from './api.js';

const FORBIDDEN = 4403; // the server refused the token in connection_init: retrying cannot help

/**
 * GraphiQL's fetcher for one access token (or none): queries and mutations over HTTP with
 * `Authorization: Bearer`, subscriptions over graphql-transport-ws with the same token in the
 * connection_init payload. A new token needs a new fetcher; `dispose` closes the old socket.
 */
export function createFetcher(accessToken) {
  const authorization = accessToken ? `Bearer ${accessToken}` : null;
  const wsClient = createClient({
    url: websocketEndpoint(),
    lazy: true,
    connectionParams: authorization ? { authorization } : {},
    shouldRetry: (event) => event?.code !== FORBIDDEN,
  });
  const fetcher = createGraphiQLFetcher({
    url: endpoint(),
    headers: authorization ? { Authorization: authorization } : {},
    wsClient,
    enableIncrementalDelivery: false, // plain JSON answers; subscriptions use the socket
  });
  return { fetcher, dispose: () => wsClient.dispose() };
}
