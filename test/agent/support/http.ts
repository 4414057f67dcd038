import { expect } from "bun:test";

/** Response bodies are whatever JSON came back; the assertions check their shape. */
// biome-ignore lint/suspicious/noExplicitAny: see above
type Json = any;

export type Api = (
  method: string,
  path: string,
  body?: unknown,
  token?: string | null,
) => Promise<{ status: number; body: Json; headers: Headers }>;

/** A tiny JSON client for `/api/v1/agents`; `token: null` sends none. */
export function api(base: string, defaultToken: string): Api {
  return async (method, path, body, token = defaultToken) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${base}/api/v1/agents${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
  };
}

/** Every protected route: no token and a bad token are 401 in the error shape. */
export async function expectUnauthenticated(call: Api, method: string, path: string, body?: unknown) {
  for (const token of [null, "not-a-jwt"]) {
    const response = await call(method, path, body, token);
    expect(response.status).toBe(401);
    expect(response.body.error.code).toBeString();
  }
}
