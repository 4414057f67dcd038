import type { Platform } from "../platform";
import { redisAvailable } from "../redis";
import { FallbackRateLimiter } from "./fallback-rate-limiter";
import { MemoryRateLimiter } from "./memory-rate-limiter";
import type { RateLimiter } from "./rate-limiter";
import { RedisRateLimiter } from "./redis-rate-limiter";

const limiters = new WeakMap<Platform, RateLimiter>();

/**
 * The platform's limiter, built once: Redis with the per-instance fallback when Redis is
 * configured, the in-process limiter in embedded mode.
 */
export function rateLimiterFor(platform: Platform): RateLimiter {
  let limiter = limiters.get(platform);
  if (limiter) return limiter;
  const redis = platform.redis;
  if (redis) {
    const fallbacks = platform.metrics.counter(
      "rate_limit_fallback_total",
      "Rate-limit checks decided by this instance alone because Redis was unreachable",
    );
    limiter = new FallbackRateLimiter(new RedisRateLimiter(redis), new MemoryRateLimiter(), {
      isAvailable: () => redisAvailable(redis),
      timeoutMs: platform.env.RATE_LIMIT_REDIS_TIMEOUT_MS,
      logger: platform.logger,
      onFallback: () => fallbacks.inc(),
    });
  } else {
    limiter = new MemoryRateLimiter();
  }
  limiters.set(platform, limiter);
  return limiter;
}
