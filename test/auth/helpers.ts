import { createAuthService } from "../../src/auth";
import type { PlatformOverrides, TestContext } from "../../src/shared/testing";

/** Cheaper argon2 settings keep the suite fast; the production defaults are exercised by the timing test. */
export const FAST_HASH = { PASSWORD_HASH_MEMORY_KIB: "4096", PASSWORD_HASH_TIME_COST: "1" };

export async function startAuth(ctx: TestContext, overrides: PlatformOverrides = {}) {
  return ctx.start([createAuthService], {
    service: "auth",
    ...overrides,
    env: { ...FAST_HASH, ...overrides.env },
  });
}

export interface SessionBody {
  user: { id: string; email: string; display_name: string | null; tier: string; created_at: string };
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_token: string;
}

export const PASSWORD = "correct horse battery";

export const uniqueEmail = () => `user-${crypto.randomUUID().slice(0, 8)}@example.com`;

export function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}/api/v1/auth${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

export function get(base: string, path: string, token?: string) {
  return fetch(`${base}/api/v1/auth${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

/** Registers a fresh user (from its own forwarded IP, so per-IP limits of other tests do not interfere). */
export async function registerUser(base: string, email = uniqueEmail()): Promise<SessionBody> {
  const response = await post(base, "/register", { email, password: PASSWORD }, { "x-forwarded-for": randomIp() });
  if (response.status !== 201) throw new Error(`register failed: ${response.status} ${await response.text()}`);
  return (await response.json()) as SessionBody;
}

export const randomIp = () =>
  `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;

export async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { error: { code: string } }).error.code;
}
