import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import type { Platform } from "../shared/platform";

export const AUTH_PREFIX = "/api/v1/auth";

/** Builds the auth service from its dependencies; no globals. */
export async function createAuthService(platform: Platform): Promise<ServiceModule> {
  void platform;
  return {
    name: "auth",
    prefix: AUTH_PREFIX,
    plugin: new Elysia({ name: "auth", prefix: AUTH_PREFIX }),
  };
}
