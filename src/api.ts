import { Elysia } from "elysia";
import type { App as AgentApp } from "./agent";
import type { App as AuthApp } from "./auth";
import type { App as BillingApp } from "./billing";
import type { App as ChatApp } from "./chat";
import type { App as PluginsApp } from "./plugins";
import type { App as StorageApp } from "./storage";

/*
 * The HTTP API's types for typed clients (Eden Treaty): `import type { App } from ".../src/api"`
 * and `treaty<App>(url)`. Import types only: nothing of the server reaches a client's bundle.
 */

export type { AgentApp, AuthApp, BillingApp, ChatApp, PluginsApp, StorageApp };

/** Never called: its return type is every service's routes in one application. */
const everyService = (
  auth: AuthApp,
  chat: ChatApp,
  agent: AgentApp,
  billing: BillingApp,
  storage: StorageApp,
  plugins: PluginsApp,
) => new Elysia().use(auth).use(chat).use(agent).use(billing).use(storage).use(plugins);

/** Every service's routes: the API behind Traefik, or one `SERVICE_NAME=all` process. */
export type App = ReturnType<typeof everyService>;
