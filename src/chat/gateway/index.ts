export type { ChatHandlers, ChatRateLimiter, JourneyHandler, SendFrame } from "./chat-seam";
export { sharedChatLimiter } from "./chat-seam";
export type { DeviceSession } from "./connection";
export { createDeviceGateway, type DeviceGateway, type DeviceGatewayOptions } from "./gateway";
export * from "./model";
