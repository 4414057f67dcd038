import { Elysia } from "elysia";
import type { ServiceModule } from "../shared/app";
import type { Platform } from "../shared/platform";
import { createDeviceGateway, type DeviceGateway, type DeviceGatewayOptions } from "./gateway";

export const CHAT_PREFIX = "/api/v1/chat";

export interface ChatServiceOptions {
  gateway?: DeviceGatewayOptions;
}

export interface ChatServiceModule extends ServiceModule {
  /** The device socket, device RPC and push of this instance. */
  gateway: DeviceGateway;
}

/** Builds the chat service from its dependencies; no globals. */
export async function createChatService(
  platform: Platform,
  options: ChatServiceOptions = {},
): Promise<ChatServiceModule> {
  const gateway = createDeviceGateway(platform, options.gateway);
  const routes = new Elysia({ name: "chat", prefix: CHAT_PREFIX });
  return {
    name: "chat",
    prefix: CHAT_PREFIX,
    // The device socket lives at /api/v1/ws/device, outside the chat prefix.
    plugin: new Elysia({ name: "chat-service" }).use(gateway.plugin).use(routes),
    gateway,
    start: () => gateway.start(),
    stop: () => gateway.stop(),
  };
}
