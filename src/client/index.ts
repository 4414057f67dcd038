export * from "./chat-stream";
export * from "./device-client";
