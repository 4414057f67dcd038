// Embedded mode (no REDIS_URL): the in-process presence and bus carry calls and pushes between the
// chat gateway and a socket-less caller of the same process.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createDeviceRpcClient } from "../../../src/shared/device-rpc/client";
import { createTestContext, eventually, type TestContext } from "../../../src/shared/testing";
import { basicTools, type ChatInstance, connectDevice, startChat } from "./helpers";

let ctx: TestContext;
let chat: ChatInstance;

beforeAll(async () => {
  ctx = await createTestContext();
  chat = await startChat(ctx, { redis: false });
});
afterAll(() => ctx.close());

test("calls, presence and pushes work without Redis", async () => {
  const userId = `user-${crypto.randomUUID()}`;
  const device = await connectDevice(ctx, { url: chat.wsUrl, userId, tools: basicTools });
  const agent = createDeviceRpcClient(chat.platform);
  await agent.start();
  ctx.defer(() => agent.stop());
  expect(await agent.isOnline(userId)).toBe(true);
  expect(await agent.call({ userId, name: "task_list", args: {} })).toMatchObject({ tasks: [{ id: "t1" }] });
  expect(await chat.gateway.rpc.call({ userId, name: "task_list", args: {} })).toMatchObject({ tasks: [{ id: "t1" }] });
  const events: unknown[] = [];
  device.on("agent_event", (event) => events.push(event));
  expect(await agent.push(userId, { type: "agent_event", run_id: "r1", status: "done" })).toBe(1);
  expect(
    await eventually(
      () => events,
      (seen) => seen.length === 1,
    ),
  ).toEqual([{ type: "agent_event", run_id: "r1", status: "done" }]);
  await expect(agent.call({ userId: "nobody", name: "task_list", args: {} })).rejects.toMatchObject({
    reason: "device_offline",
  });
});
