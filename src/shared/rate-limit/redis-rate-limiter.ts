import type { Redis } from "../redis";
import type { RateDecision, RateLimiter, RateRule } from "./rate-limiter";
import { RedisScript } from "./script";

/**
 * GCRA (see `gcra` in rate-limiter.ts) in one atomic script on Redis's own clock, so replicas with
 * skewed clocks agree. The stored value is the theoretical arrival time in ms with three decimals
 * (Lua's default number formatting would round it); it expires once it lies in the past.
 */
const GCRA = new RedisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local interval = window / limit
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local nxt = tat + interval * cost
local allow_at = nxt - window
if allow_at > now then
  local retry = math.ceil(allow_at - now)
  return {0, 0, retry, retry}
end
redis.call('SET', KEYS[1], string.format('%.3f', nxt), 'PX', math.max(1, math.ceil(nxt - now)))
return {1, math.floor((now - allow_at) / interval), math.ceil(nxt - now), 0}
`);

/** The shared limiter: one round trip per check, atomic across every replica. */
export class RedisRateLimiter implements RateLimiter {
  constructor(private readonly redis: Redis) {}

  async check(key: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    const [allowed, remaining, resetMs, retryAfterMs] = (await GCRA.run(
      this.redis,
      [key],
      [rule.limit, rule.windowMs, cost],
    )) as [number, number, number, number];
    return { allowed: allowed === 1, limit: rule.limit, remaining, resetMs, retryAfterMs, source: "shared" };
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(key);
  }
}
