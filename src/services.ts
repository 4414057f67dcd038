import { createAgentService } from "./agent";
import { createAuthService } from "./auth";
import { createBillingService } from "./billing";
import { createChatService } from "./chat";
import { createPluginsService } from "./plugins";
import type { ServiceName } from "./shared/env";
import type { ServiceFactory } from "./shared/run";
import { createStorageService } from "./storage";

/** Every service of this codebase by SERVICE_NAME. */
export const serviceFactories: Record<ServiceName, ServiceFactory> = {
  auth: createAuthService,
  chat: createChatService,
  agent: createAgentService,
  billing: createBillingService,
  storage: createStorageService,
  plugins: createPluginsService,
};
