// The Redis topology a process connects to, from its environment: exactly one of REDIS_URL,
// REDIS_SENTINELS + REDIS_SENTINEL_NAME, REDIS_CLUSTER_NODES; a wrong combination stops the start
// with a message naming the variables.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadEnv } from "../../src/shared/env";
import { hostPorts, redisTarget, redisTopology, redisTopologyOf } from "../../src/shared/redis";

const base = { SERVICE_NAME: "chat", NODE_ENV: "test" };

describe("redis topology from the environment", () => {
  test("none of the three: embedded mode", () => {
    expect(redisTopology({})).toBeUndefined();
  });

  test("REDIS_URL: one node", () => {
    const topology = redisTopology({ REDIS_URL: "redis://cache:6380/2" });
    expect(topology).toEqual({ kind: "single", url: "redis://cache:6380/2" });
    expect(redisTarget(topology!)).toBe("cache:6380");
  });

  test("REDIS_SENTINELS with REDIS_SENTINEL_NAME: the sentinels, 26379 when no port is given", () => {
    const topology = redisTopology(
      { REDIS_SENTINELS: "s1:26380, s2 ,[::1]:26381", REDIS_SENTINEL_NAME: "adiuva", REDIS_USERNAME: "svc" },
      { password: "p", sentinelPassword: "sp" },
    );
    expect(topology).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "s1", port: 26380 },
        { host: "s2", port: 26379 },
        { host: "::1", port: 26381 },
      ],
      name: "adiuva",
      credentials: { username: "svc", password: "p", sentinelPassword: "sp", tls: undefined },
    });
    expect(redisTarget(topology!)).toBe("sentinel adiuva via s1:26380,s2:26379,::1:26381");
  });

  test("REDIS_CLUSTER_NODES: the seed nodes, 6379 when no port is given", () => {
    const topology = redisTopology({ REDIS_CLUSTER_NODES: "r1:7000,r2" });
    expect(topology).toMatchObject({
      kind: "cluster",
      nodes: [
        { host: "r1", port: 7000 },
        { host: "r2", port: 6379 },
      ],
    });
    expect(redisTarget(topology!)).toBe("cluster r1:7000,r2:6379");
  });

  test("two topologies at once are refused, naming both", () => {
    expect(() => loadEnv({ ...base, REDIS_URL: "redis://a:6379", REDIS_CLUSTER_NODES: "b:7000" })).toThrow(
      /set only one of REDIS_URL, REDIS_CLUSTER_NODES/,
    );
    expect(() =>
      loadEnv({ ...base, REDIS_SENTINELS: "s:26379", REDIS_SENTINEL_NAME: "m", REDIS_CLUSTER_NODES: "b" }),
    ).toThrow(ConfigError);
  });

  test("sentinels without the master's name are refused", () => {
    expect(() => loadEnv({ ...base, REDIS_SENTINELS: "s:26379" })).toThrow(/REDIS_SENTINEL_NAME must be set/);
  });

  test("a malformed node list is refused, naming the entry", () => {
    for (const list of ["r1:70000", "r1:x", "r1:1:2", " , "]) {
      expect(() => hostPorts("REDIS_CLUSTER_NODES", list, 6379)).toThrow(ConfigError);
    }
    expect(() => loadEnv({ ...base, REDIS_CLUSTER_NODES: "r1:70000" })).toThrow(/"r1:70000" is not host:port/);
  });

  test("in production any of the three satisfies the Redis requirement", () => {
    const production = {
      SERVICE_NAME: "chat",
      NODE_ENV: "production",
      DATABASE_URL: "postgres://db/adiuva",
      LLM_BASE_URL: "http://llm",
      JWT_PUBLIC_KEY_FILE: "/keys/pub.pem",
      PLUGIN_PSEUDONYM_KEY_FILE: "/keys/plugin_pseudonym.key",
    };
    expect(() => loadEnv(production)).toThrow(/REDIS_URL \(or REDIS_SENTINELS or REDIS_CLUSTER_NODES\)/);
    expect(loadEnv({ ...production, REDIS_CLUSTER_NODES: "r1:7000" }).REDIS_CLUSTER_NODES).toBe("r1:7000");
    expect(loadEnv({ ...production, REDIS_SENTINELS: "s1", REDIS_SENTINEL_NAME: "m" }).REDIS_SENTINEL_NAME).toBe("m");
  });

  test("REDIS_PASSWORD_FILE replaces the URL's password and reaches Sentinel and Cluster nodes", () => {
    const dir = mkdtempSync(join(tmpdir(), "redis-secret-"));
    writeFileSync(join(dir, "password"), "s3cr:t/\n");
    writeFileSync(join(dir, "sentinel"), "watch\n");
    const single = redisTopologyOf(
      loadEnv({ ...base, REDIS_URL: "redis://:old@cache:6379", REDIS_PASSWORD_FILE: join(dir, "password") }),
    );
    expect(single).toEqual({ kind: "single", url: "redis://:s3cr%3At%2F@cache:6379" });
    expect(redisTarget(single!)).not.toContain("s3cr");
    const sentinel = redisTopologyOf(
      loadEnv({
        ...base,
        REDIS_SENTINELS: "s1",
        REDIS_SENTINEL_NAME: "m",
        REDIS_PASSWORD_FILE: join(dir, "password"),
        REDIS_SENTINEL_PASSWORD_FILE: join(dir, "sentinel"),
      }),
    );
    expect(sentinel).toMatchObject({ credentials: { password: "s3cr:t/", sentinelPassword: "watch" } });
    expect(() =>
      redisTopologyOf(loadEnv({ ...base, REDIS_CLUSTER_NODES: "r1", REDIS_PASSWORD_FILE: join(dir, "missing") })),
    ).toThrow(/REDIS_PASSWORD_FILE: no such file/);
  });
});
