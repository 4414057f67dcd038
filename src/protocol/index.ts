export * from "./constants";
export * from "./frames";
