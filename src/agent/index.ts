import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import type { Platform } from "../shared/platform";

export const AGENT_PREFIX = "/api/v1/agents";

/** Builds the agent service from its dependencies; no globals. */
export async function createAgentService(platform: Platform): Promise<ServiceModule> {
  void platform;
  return {
    name: "agent",
    prefix: AGENT_PREFIX,
    plugin: new Elysia({ name: "agent", prefix: AGENT_PREFIX }),
  };
}
