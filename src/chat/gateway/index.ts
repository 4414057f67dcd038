export * from "../../protocol";
export type { ChatHandlers, ChatRateLimiter, JourneyHandler, SendFrame } from "./chat-seam";
export { sharedChatLimiter } from "./chat-seam";
export type { DeviceSession } from "./connection";
export {
  createDeviceGateway,
  createDeviceRouting,
  type DeviceGateway,
  type DeviceGatewayOptions,
  type DeviceRouting,
} from "./gateway";
export type { LocalPluginSource } from "./plugins-frame";
