// The device tool contract: what the chat service serves at /api/v1/ws/device/tools.json, the
// generated docs/device-tools.md, the tools the chat agent and the agent runner really call (the
// runner's source and writer run against a recording device RPC, in process), and a device built
// with the SDK's typed handlers answering a real chat instance. The `@ts-expect-error` lines are
// checked by `bun run typecheck`: a handler answering with the wrong shape must not compile.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DEVICE_TOOLS_DOC, formatMarkdown, renderDeviceToolsDoc } from "../../scripts/device-tools-doc";
import { directorySource } from "../../src/agent/runner/source";
import { writeEntities } from "../../src/agent/runner/write";
import { DEVICE_TOOLS } from "../../src/chat/agent/device-tools";
import { DEVICE_TOOLS_PATH, type DeviceToolsDocument } from "../../src/chat/device-tools-route";
import { deviceTools } from "../../src/client";
import type { DeviceRpc } from "../../src/shared/device-rpc";
import { DEVICE_TOOL_CONTRACT, DEVICE_TOOL_NAMES, type DeviceToolName } from "../../src/shared/device-tools";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { type ChatInstance, connectDevice, startChat } from "./gateway/helpers";

let ctx: TestContext;
let chat: ChatInstance;
beforeAll(async () => {
  ctx = await createTestContext();
  chat = await startChat(ctx);
});
afterAll(() => ctx.close());

interface ServedContract {
  protocol: number;
  tools: Array<{
    name: string;
    description: string;
    callers: Array<"chat" | "agent">;
    idempotency_key: boolean;
    args: { properties: Record<string, unknown> } & Record<string, unknown>;
    result: Record<string, unknown>;
  }>;
}

const served = async () => {
  const response = await fetch(`${chat.url}${DEVICE_TOOLS_PATH}`);
  return { status: response.status, body: (await response.json()) as ServedContract };
};

/** A device RPC that answers from `answer` and records every call the service makes. */
function recordingRpc(answer: (name: string, args: Record<string, unknown>) => unknown) {
  const calls: Array<{ name: string; args: Record<string, unknown>; origin?: string }> = [];
  const rpc: DeviceRpc = {
    call: async (options) => {
      const args = JSON.parse(JSON.stringify(options.args ?? {})) as Record<string, unknown>;
      calls.push({ name: options.name, args, origin: options.origin });
      return answer(options.name, args);
    },
    isOnline: async () => true,
    devices: async () => [],
  };
  return { rpc, calls };
}

/** The arguments a service sent, checked against the contract with no field beyond it. */
const argsMatch = (name: string, args: unknown) =>
  DEVICE_TOOL_CONTRACT[name as DeviceToolName].args.strict().safeParse(args).success;

describe("GET /api/v1/ws/device/tools.json", () => {
  test("is served without a token: every tool with its arguments and result as JSON Schema", async () => {
    const { status, body } = await served();
    expect(status).toBe(200);
    expect(body.protocol).toBe(1);
    expect(body.tools.map((tool) => tool.name)).toEqual(DEVICE_TOOL_NAMES);
    const create = body.tools.find((tool) => tool.name === "task_create");
    expect(create).toMatchObject({
      callers: ["chat", "agent"],
      idempotency_key: true,
      args: { type: "object", additionalProperties: false, required: ["title"] },
      result: { type: "object", required: ["id"] },
    });
    expect(Object.keys(create?.args.properties ?? {})).toEqual([
      "title",
      "due",
      "project_id",
      "notes",
      "idempotency_key",
    ]);
    const read = body.tools.find((tool) => tool.name === "fs_read_file");
    expect(read).toMatchObject({
      callers: ["agent"],
      idempotency_key: false,
      result: { required: ["content"], properties: { encoding: { enum: ["utf8", "base64"], default: "utf8" } } },
    });
  });

  test("docs/device-tools.md is what the endpoint serves (regenerate with `bun run docs:device-tools`)", async () => {
    const { body } = await served();
    const expected = await formatMarkdown(renderDeviceToolsDoc(body as DeviceToolsDocument));
    expect(await Bun.file(DEVICE_TOOLS_DOC).text()).toBe(expected);
    for (const tool of body.tools) expect(expected).toContain(`### ${tool.name}\n`);
  });
});

describe("the contract covers every call the services make", () => {
  test("the chat agent's tools are exactly the contract's chat tools, with the same argument schemas", () => {
    const chatTools = DEVICE_TOOL_NAMES.filter((name) =>
      (DEVICE_TOOL_CONTRACT[name].callers as readonly string[]).includes("chat"),
    );
    expect(Object.keys(DEVICE_TOOLS)).toEqual(chatTools);
    for (const [name, spec] of Object.entries(DEVICE_TOOLS)) {
      expect(spec.input as unknown).toBe(DEVICE_TOOL_CONTRACT[name as DeviceToolName].args);
    }
  });

  test("an agent run's listing, reading and writing use contract tools with contract arguments", async () => {
    const { rpc, calls } = recordingRpc((name, args) => {
      if (name === "fs_list_dir") {
        return args.cursor
          ? { entries: [{ path: "/docs/b.md", type: "file", size: 3 }] }
          : { entries: [{ path: "/docs/a.md", type: "file", size: 3, mtime: 1 }], next_cursor: "2" };
      }
      if (name === "fs_read_file") return { content: "hey" };
      return { id: `${name}-1` };
    });
    const device = { rpc, userId: "u1", origin: "agent:run-1", deadlineMs: 1000 };
    const source = directorySource(device, { path: "/docs" });
    const signal = new AbortController().signal;
    expect(await source.list(signal)).toEqual([
      { item: "/docs/a.md", size: 3 },
      { item: "/docs/b.md", size: 3 },
    ]);
    expect(await source.read("/docs/a.md", signal)).toEqual({ name: "/docs/a.md", content: "hey", truncated: false });
    await writeEntities(
      { rpc, userId: "u1", scope: source.scope, item: "/docs/a.md", origin: "agent:run-1", deadlineMs: 1000, signal },
      {
        projects: [{ name: "Garden", description: null }],
        tasks: [{ title: "Water", due: "2026-12-01", notes: null, project: "Garden" }],
        notes: [{ title: "Soil", body: "Loam", project: null }],
        events: [{ title: "Visit", at: "2026-12-02T10:00:00Z", end: null, project: "Garden" }],
      },
    );
    expect(calls.map((call) => call.name)).toEqual([
      "fs_list_dir",
      "fs_list_dir",
      "fs_read_file",
      "project_create",
      "task_create",
      "note_create",
      "timeline_add_event",
    ]);
    for (const call of calls) {
      const spec = DEVICE_TOOL_CONTRACT[call.name as DeviceToolName];
      expect({ name: call.name, agent: (spec.callers as readonly string[]).includes("agent") }).toEqual({
        name: call.name,
        agent: true,
      });
      expect({ name: call.name, valid: argsMatch(call.name, call.args) }).toEqual({ name: call.name, valid: true });
    }
    // The project's id from the contract's result links the task and the event to it.
    expect(calls.find((call) => call.name === "task_create")?.args).toMatchObject({
      project_id: "project_create-1",
      idempotency_key: expect.stringMatching(/^agent:[0-9a-f]{40}$/),
    });
  });
});

describe("SDK handlers typed by the contract", () => {
  test("a device with deviceTools() handlers answers calls with results that satisfy the contract", async () => {
    const userId = `user-${crypto.randomUUID()}`;
    await connectDevice(ctx, {
      url: chat.wsUrl,
      userId,
      tools: deviceTools({
        task_list: ({ status }) => ({ tasks: [{ id: "t1", title: `Buy milk (${status ?? "any"})`, status: "open" }] }),
        fs_read_file: async ({ path, max_bytes }) => ({ content: `${path}:${max_bytes}`, truncated: false }),
      }),
    });
    const list = await chat.gateway.rpc.call({ userId, name: "task_list", args: { status: "open" } });
    const file = await chat.gateway.rpc.call({ userId, name: "fs_read_file", args: { path: "/a", max_bytes: 10 } });
    expect(DEVICE_TOOL_CONTRACT.task_list.result.parse(list)).toEqual({
      tasks: [{ id: "t1", title: "Buy milk (open)", status: "open" }],
    });
    expect(DEVICE_TOOL_CONTRACT.fs_read_file.result.parse(file)).toEqual({
      content: "/a:10",
      encoding: "utf8",
      truncated: false,
    });
  });

  test("handlers answering with the wrong shape do not compile", () => {
    const wrong = deviceTools({
      // @ts-expect-error a created item needs its id
      task_create: () => ({ title: "no id" }),
      // @ts-expect-error entry types are "file" or "dir"
      fs_list_dir: () => ({ entries: [{ path: "/a", type: "link" }] }),
      // @ts-expect-error task_list answers {tasks}, not a bare array
      task_list: async () => [],
      // @ts-expect-error the arguments are typed too: fs_read_file has no `encoding` argument
      fs_read_file: ({ encoding }) => ({ content: String(encoding) }),
    });
    // Types only: at runtime the handlers are handed over unchanged.
    expect(Object.keys(wrong)).toEqual(["task_create", "fs_list_dir", "task_list", "fs_read_file"]);
  });
});
