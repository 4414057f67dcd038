// Chat turns while no plugins replica answers the lookup: the first waits out CHAT_PLUGIN_LOOKUP_MS
// and goes on without plugin tools, the next ones do not wait at all, devices get no `plugins`
// frame; once a replica answers again, turns get the plugins' tools back by themselves.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DeviceClient, type PluginsFrame } from "../../src/client";
import { openPluginToolsQueue } from "../../src/shared/plugin-tools";
import { eventually } from "../../src/shared/testing";
import { type ChatHarness, promptOf, startChat, turns } from "./harness";
import { localPlugin, remotePlugin, startMcpServer, startPluginsReplica, type TestMcpServer } from "./plugin-servers";

const LOOKUP_MS = 1000;

let h: ChatHarness;
let mcp: TestMcpServer;
beforeAll(async () => {
  h = await startChat({ env: { CHAT_PLUGIN_LOOKUP_MS: String(LOOKUP_MS) } });
  mcp = await startMcpServer();
  h.ctx.defer(() => mcp.close());
});
afterAll(() => h.ctx.close());

const user = () => `user-${crypto.randomUUID()}`;
/** A device that connects while no replica answers, and stays connected. */
const lonely = { userId: user(), frames: [] as PluginsFrame[] };

async function timedTurn(userId: string) {
  h.llm.script({ text: "Here is an answer without plugins." });
  const index = turns(h);
  const started = performance.now();
  const response = await h.chatJson(await h.token(userId), { text: "hello" });
  return { response, ms: performance.now() - started, tools: promptOf(h.llm, index).tools };
}

describe("with no plugins replica", () => {
  test("the first turn waits out the deadline, then completes without plugin tools; its lookup is withdrawn", async () => {
    const { response, ms, tools } = await timedTurn(user());
    expect(response.status).toBe(200);
    expect(((await response.json()) as { text: string }).text).toBe("Here is an answer without plugins.");
    expect(tools.filter((name) => name.includes("__"))).toEqual([]);
    expect(ms).toBeGreaterThanOrEqual(LOOKUP_MS - 50);
    expect(ms).toBeLessThan(LOOKUP_MS + 2000);
    const queue = openPluginToolsQueue(h.platform);
    h.ctx.defer(() => queue.close());
    expect(
      (
        await eventually(
          () => queue.counts(),
          (counts) => counts.waiting === 0,
        )
      ).waiting,
    ).toBe(0);
  });

  test("the next turns do not wait for it", async () => {
    for (let round = 0; round < 3; round += 1) {
      const { response, ms, tools } = await timedTurn(user());
      expect(response.status).toBe(200);
      expect(tools.filter((name) => name.includes("__"))).toEqual([]);
      expect(ms).toBeLessThan(LOOKUP_MS - 200);
    }
  });

  test("a device gets welcome and no plugins frame", async () => {
    const device = new DeviceClient({
      url: h.first.wsUrl,
      deviceId: "lonely-device",
      token: () => h.token(lonely.userId),
    });
    h.ctx.defer(() => device.close());
    device.on("plugins", (frame) => lonely.frames.push(frame));
    await device.connect();
    // Longer than any lookup it may have caused could take.
    await Bun.sleep(LOOKUP_MS + 200);
    expect(lonely.frames).toEqual([]);
  });

  test("once a replica answers, turns get the plugins' tools again, and the device connected meanwhile its list", async () => {
    const replica = startPluginsReplica(h.platform);
    h.ctx.defer(() => replica.close());
    const companion = localPlugin();
    replica.installed.set(lonely.userId, { local: [companion] });
    const userId = user();
    replica.installed.set(userId, { plugins: [remotePlugin(mcp.url)] });
    const offered = await eventually(
      async () => (await timedTurn(userId)).tools,
      (tools) => tools.includes("weather__lookup_weather"),
      LOOKUP_MS * 5,
      50,
    );
    expect(offered).toContain("weather__lookup_weather");
    // Still connected since the outage, never told of a change: its list arrives once it can be looked up.
    const [frame] = await eventually(
      () => lonely.frames,
      (frames) => frames.length > 0,
      20_000,
      100,
    );
    expect(frame?.local.map((plugin) => plugin.slug)).toEqual([companion.slug]);
  }, 30_000);
});
