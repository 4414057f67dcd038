import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import type { Platform } from "../shared/platform";

export const CHAT_PREFIX = "/api/v1/chat";

/** Builds the chat service from its dependencies; no globals. */
export async function createChatService(platform: Platform): Promise<ServiceModule> {
  void platform;
  return {
    name: "chat",
    prefix: CHAT_PREFIX,
    plugin: new Elysia({ name: "chat", prefix: CHAT_PREFIX }),
  };
}
