import { createTokenVerifier, tokenPolicy } from "../../src/shared/auth/verifier";
import { loadEnv } from "../../src/shared/env";
import { silentLogger } from "../../src/shared/logger";
import { createPlatform, type Platform } from "../../src/shared/platform";

export const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

/** The Redis a benchmark process uses: a Cluster when REDIS_CLUSTER_NODES names one, else REDIS_URL. */
export const benchRedisEnv = (): Record<string, string> =>
  process.env.REDIS_CLUSTER_NODES ? { REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES } : { REDIS_URL };
export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A platform for a benchmark process (nothing is queried in PostgreSQL; the pool stays idle). */
export function benchPlatform(options: {
  keyPrefix: string;
  publicPem: string;
  service?: "chat" | "agent";
  redis?: Record<string, string>;
}): Platform {
  const env = loadEnv({
    SERVICE_NAME: options.service ?? "chat",
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    DATABASE_URL,
    ...(options.redis ?? benchRedisEnv()),
  });
  return createPlatform({
    env,
    logger: silentLogger(),
    verifier: createTokenVerifier({ source: { kind: "pem", pem: options.publicPem }, ...tokenPolicy(env) }),
    keyPrefix: options.keyPrefix,
  });
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Reads one JSON line from a child's stdout. */
export async function readLine(stream: ReadableStream<Uint8Array>): Promise<Record<string, unknown>> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`process ended before answering: ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return JSON.parse(text.slice(0, text.indexOf("\n")));
}
