import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { paths } from "./api-types";

export type { components, operations, paths } from "./api-types";

/** The access token, or a function asked before every request (return undefined to send none). */
export type ApiToken = string | (() => string | undefined | Promise<string | undefined>);

export interface ApiClientOptions extends Omit<ClientOptions, "baseUrl"> {
  /** Where the services are served, e.g. `https://api.example.com` (paths start at `/api/v1/...`). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>`; omit for the public routes (register, login, ...). */
  token?: ApiToken;
}

/** A client of the HTTP API typed by its OpenAPI document: `GET`, `POST`, ... of `paths`. */
export type ApiClient = Client<paths>;

/**
 * An openapi-fetch client of the backend's HTTP API: paths, parameters, bodies and responses are
 * typed from the OpenAPI document the services serve, and a misspelt path does not compile.
 *
 * ```ts
 * const api = createApiClient({ baseUrl, token: () => auth.accessToken() });
 * const { data, error } = await api.GET("/api/v1/chat/conversations", { params: { query: { limit: 20 } } });
 * ```
 */
export function createApiClient({ token, ...options }: ApiClientOptions): ApiClient {
  const client = createClient<paths>(options);
  if (token !== undefined) {
    client.use({
      async onRequest({ request }) {
        const value = typeof token === "function" ? await token() : token;
        if (value) request.headers.set("authorization", `Bearer ${value}`);
        return request;
      },
    });
  }
  return client;
}
