import type { Platform } from "../shared/platform";
import { redisAvailable } from "../shared/redis";
import { FallbackQuotaCounter } from "./fallback-quota";
import { MemoryQuotaCounter, type QuotaCounter, RedisQuotaCounter } from "./quota";

/**
 * The chat quota: Redis with per-instance counting while it is unreachable (the rate limiter's
 * policy, see fallback-quota.ts), or in-process in embedded mode.
 */
export function quotaCounterFor(platform: Platform): QuotaCounter {
  const redis = platform.redis;
  if (!redis) return new MemoryQuotaCounter();
  const fallbacks = platform.metrics.counter(
    "quota_fallback_total",
    "Daily quota units decided by this instance alone because Redis was unreachable",
  );
  return new FallbackQuotaCounter(new RedisQuotaCounter(redis, platform.keys), redis, platform.keys, {
    isAvailable: () => redisAvailable(redis),
    timeoutMs: platform.env.RATE_LIMIT_REDIS_TIMEOUT_MS,
    logger: platform.logger,
    onFallback: () => fallbacks.inc(),
  });
}
