import { type ChatServiceModule, createChatService } from "../../../src/chat";
import { createDeviceGateway, type DeviceGatewayOptions } from "../../../src/chat/gateway";
import { DeviceClient, type DeviceClientOptions, ToolFailure, type ToolHandler } from "../../../src/client";
import { DeviceCallError } from "../../../src/shared/device-rpc";
import type { Platform } from "../../../src/shared/platform";
import type { RunningServer } from "../../../src/shared/server";
import { type PlatformOverrides, type TestContext, testKeys, testRedisEnv } from "../../../src/shared/testing";

export type ChatInstance = RunningServer & { platform: Platform; gateway: ChatServiceModule["gateway"]; wsUrl: string };

/** Starts one chat instance on the test context (same database and key prefix as its siblings). */
export async function startChat(
  ctx: TestContext,
  overrides: PlatformOverrides = {},
  options: DeviceGatewayOptions = {},
): Promise<ChatInstance> {
  const started = await ctx.start([(platform) => createChatService(platform, { gateway: options })], {
    service: "chat",
    ...overrides,
  });
  const module = started.modules[0] as ChatServiceModule;
  return { ...started, gateway: module.gateway, wsUrl: wsUrl(started.url) };
}

/** The device gateway alone, with no chat engine behind it: for tests of the gateway's own seams. */
export async function startGatewayOnly(
  ctx: TestContext,
  overrides: PlatformOverrides = {},
  options: DeviceGatewayOptions = {},
): Promise<ChatInstance> {
  let gateway: ChatServiceModule["gateway"] | undefined;
  const started = await ctx.start(
    [
      async (platform) => {
        const created = createDeviceGateway(platform, options);
        gateway = created;
        return {
          name: "chat",
          prefix: "/api/v1/chat",
          plugin: created.plugin,
          start: created.start,
          stop: created.stop,
        };
      },
    ],
    { service: "chat", ...overrides },
  );
  if (!gateway) throw new Error("gateway not built");
  return { ...started, gateway, wsUrl: wsUrl(started.url) };
}

export const wsUrl = (httpUrl: string) => `${httpUrl.replace(/^http/, "ws")}/api/v1/ws/device`;

/** A device built with the SDK, closed with the context. */
export async function connectDevice(
  ctx: TestContext,
  options: Partial<DeviceClientOptions> & { url: DeviceClientOptions["url"]; userId: string },
): Promise<DeviceClient> {
  const { userId, ...rest } = options;
  const client = new DeviceClient({
    deviceId: `device-${crypto.randomUUID().slice(0, 8)}`,
    token: () => ctx.token(userId, "pro"),
    backoff: { initialMs: 50, maxMs: 400 },
    ...rest,
  });
  ctx.defer(() => client.close());
  await client.connect();
  return client;
}

/** How a call ended: "resolved", or the device RPC's error code. */
export const reason = (promise: Promise<unknown>) =>
  promise.then(
    () => "resolved",
    (error: unknown) => (error instanceof DeviceCallError ? error.reason : String(error)),
  );

/** Tool handlers used across tests: echo answers at once, fail answers with a device error. */
export const basicTools: Record<string, ToolHandler> = {
  task_list: (args) => ({ tasks: [{ id: "t1", title: "Buy milk", status: "open" }], args }),
  task_create: () => {
    throw new ToolFailure("storage_full", "disk full");
  },
};

/** A raw socket for protocol-level tests: collects frames and the close event. */
export async function rawSocket(url: string, init?: { headers?: Record<string, string> }) {
  const frames: Array<Record<string, unknown>> = [];
  const ws = new WebSocket(url, init as never);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  });
  ws.onmessage = (event) => frames.push(JSON.parse(String(event.data)));
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("socket failed to open"));
  });
  const next = async (type: string, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = frames.findIndex((frame) => frame.type === type);
      if (index >= 0) return frames.splice(index, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no ${type} frame; saw ${JSON.stringify(frames)}`);
      await Bun.sleep(5);
    }
  };
  return { ws, frames, closed, next, send: (frame: unknown) => ws.send(JSON.stringify(frame)) };
}

/**
 * A chat instance in a process of its own (fixtures/chat-instance.ts) on the context's database,
 * Redis (whichever topology the tests run on) and key prefix, so a test can SIGKILL it like a
 * crashed container; `env` adds to its configuration. Killed at the context's close if the test did not.
 */
export async function spawnChatInstance(ctx: TestContext, env: Record<string, string> = {}) {
  const keys = await testKeys();
  const child = Bun.spawn(["bun", `${import.meta.dir}/fixtures/chat-instance.ts`, ctx.keyPrefix], {
    env: {
      ...process.env,
      SERVICE_NAME: "chat",
      NODE_ENV: "test",
      LOG_LEVEL: "silent",
      HOST: "127.0.0.1",
      DATABASE_URL: ctx.databaseUrl,
      ...testRedisEnv(),
      JWT_PUBLIC_KEY_FILE: keys.publicKeyFile,
      ...env,
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  ctx.defer(() => child.kill("SIGKILL"));
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("instance exited before listening");
    text += new TextDecoder().decode(value);
  }
  const { port } = JSON.parse(text) as { port: number };
  return { child, url: wsUrl(`http://127.0.0.1:${port}`) };
}
