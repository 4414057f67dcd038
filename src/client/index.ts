export * from "./device-client";
