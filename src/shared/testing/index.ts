export * from "./capture-logger";
export * from "./context";
export * from "./eventually";
export * from "./fake-openai";
export * from "./infra";
export * from "./tcp-proxy";
export * from "./tokens";
