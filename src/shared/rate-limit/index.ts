export * from "./fallback-rate-limiter";
export * from "./for-platform";
export * from "./http";
export * from "./memory-rate-limiter";
export * from "./rate-limiter";
export * from "./redis-rate-limiter";
export * from "./script";
