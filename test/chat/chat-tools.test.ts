// The deep agent's device tools end to end: two chat instances on one Redis, SDK devices over the
// real WebSocket, tool calls through the real device RPC. The real provider parses streamed tool
// calls from the fake OpenAI-compatible server, whose recorded requests show what the model saw.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ToolFailure, type ToolHandler } from "../../src/client";
import { TIER_LIMITS } from "../../src/shared/tiers";
import { type ChatHarness, type ChatInstance, promptOf, readSse, startChat, turns } from "./harness";

let h: ChatHarness;
let other: ChatInstance;
beforeAll(async () => {
  h = await startChat({ env: { CHAT_TOOL_DEADLINE_MS: "300" } });
  other = await h.startInstance();
});
afterAll(() => h.ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

function recording(handlers: Record<string, ToolHandler>) {
  const calls: Array<{ name: string; args: unknown; origin: string }> = [];
  const tools: Record<string, ToolHandler> = {};
  for (const [name, handler] of Object.entries(handlers)) {
    tools[name] = (args, context) => {
      calls.push({ name, args, origin: context.origin });
      return handler(args, context);
    };
  }
  return { calls, tools };
}

describe("device tools", () => {
  test("a tool runs on a device connected to the other instance and its result reaches the model's next step", async () => {
    const userId = user();
    const { calls, tools } = recording({ task_list: () => [{ id: "t1", title: "Pay rent", status: "open" }] });
    await h.device(userId, { ...tools, task_create: () => ({}) }, { instance: other });
    h.llm.script(
      { toolCalls: [{ id: "call_a", name: "task_list", args: { status: "open" } }] },
      { text: "You have one open task: Pay rent." },
    );
    const first = turns(h);
    const { chunks } = await readSse(await h.chatSse(await h.token(userId), { text: "What is on my list?" }));
    expect(calls).toEqual([{ name: "task_list", args: { status: "open" }, origin: "chat" }]);
    const next = promptOf(h.llm, first + 1).messages;
    expect(next.find((message) => message.role === "tool")).toEqual({
      role: "tool",
      tool_call_id: "call_a",
      content: JSON.stringify([{ id: "t1", title: "Pay rent", status: "open" }]),
    });
    expect(chunks.find((chunk) => chunk.type === "tool-input-available")).toMatchObject({
      toolCallId: "call_a",
      toolName: "task_list",
      input: { status: "open" },
    });
    expect(chunks.find((chunk) => chunk.type === "tool-output-available")).toMatchObject({
      toolCallId: "call_a",
      output: [{ id: "t1", title: "Pay rent", status: "open" }],
    });
    expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });
  });

  test("only the tools the device advertised are offered, with their schemas", async () => {
    const userId = user();
    const noop = () => ({});
    await h.device(userId, { note_search: noop, timeline_list: noop, fs_read_file: noop, unknown_tool: noop });
    h.llm.script({ text: "ok" });
    const index = turns(h);
    await h.chatJson(await h.token(userId), { text: "hi" });
    const request = h.llm.chatRequests().filter((each) => each.stream)[index]!;
    const offered = request.body.tools ?? [];
    // Besides the device's: documents_search, which the storage service answers (test/storage/documents-tool.test.ts).
    expect(offered.map((tool) => tool.function.name).sort()).toEqual([
      "documents_search",
      "note_search",
      "timeline_list",
    ]);
    expect(offered.find((tool) => tool.function.name === "note_search")?.function.parameters).toMatchObject({
      type: "object",
      required: ["query"],
    });
  });

  test("with no device online the model is offered no device tools and still answers", async () => {
    h.llm.script({ text: "I cannot reach your device, but here is an answer." });
    const index = turns(h);
    const response = await h.chatJson(await h.token(user()), { text: "hi" });
    expect(response.status).toBe(200);
    expect(promptOf(h.llm, index).tools).toEqual(["documents_search"]);
  });

  test("a device error reaches the model as a tool error and the turn completes", async () => {
    const userId = user();
    await h.device(
      userId,
      {
        task_complete: () => {
          throw new ToolFailure("not_found", "no task with id t9");
        },
      },
      { instance: other },
    );
    h.llm.script(
      { toolCalls: [{ id: "call_e", name: "task_complete", args: { id: "t9" } }] },
      { text: "That task does not exist." },
    );
    const first = turns(h);
    const { chunks } = await readSse(await h.chatSse(await h.token(userId), { text: "Complete t9" }));
    const toolMessage = promptOf(h.llm, first + 1).messages.find((message) => message.role === "tool");
    expect(String(toolMessage?.content)).toContain("tool_error (not_found): no task with id t9");
    expect(chunks.find((chunk) => chunk.type === "tool-output-error")).toMatchObject({
      toolCallId: "call_e",
      errorText: expect.stringContaining("tool_error (not_found): no task with id t9"),
    });
    expect(chunks.at(-1)).toMatchObject({ type: "finish", finishReason: "stop" });
  });

  test("a device that does not answer in time is a tool error too, not a crash", async () => {
    const userId = user();
    await h.device(userId, {
      project_list: (_args, context) =>
        new Promise((resolve) => context.signal.addEventListener("abort", () => resolve(null))),
    });
    h.llm.script({ toolCalls: [{ id: "call_t", name: "project_list", args: {} }] }, { text: "Your device is slow." });
    const first = turns(h);
    const response = await h.chatJson(await h.token(userId), { text: "projects?" });
    expect(response.status).toBe(200);
    const toolMessage = promptOf(h.llm, first + 1).messages.find((message) => message.role === "tool");
    expect(String(toolMessage?.content)).toContain("deadline_exceeded");
  });

  test("invalid tool arguments from the model are reported back to it without calling the device", async () => {
    const userId = user();
    const { calls, tools } = recording({ note_search: () => [] });
    await h.device(userId, tools);
    h.llm.script({ toolCalls: [{ id: "call_bad", name: "note_search", args: { wrong: 1 } }] }, { text: "Sorry." });
    const first = turns(h);
    const response = await h.chatJson(await h.token(userId), { text: "find notes" });
    expect(response.status).toBe(200);
    expect(calls).toEqual([]);
    const toolMessage = promptOf(h.llm, first + 1).messages.find((message) => message.role === "tool");
    expect(String(toolMessage?.content)).toContain("query");
  });

  test("creating tools get the tool call id as idempotency key when the model gives none", async () => {
    const userId = user();
    const { calls, tools } = recording({ task_create: (args) => ({ id: "t2", ...(args as object), status: "open" }) });
    await h.device(userId, tools);
    h.llm.script(
      { toolCalls: [{ id: "call_c", name: "task_create", args: { title: "Call mom" } }] },
      { text: "Done." },
    );
    await h.chatJson(await h.token(userId), { text: "remind me to call mom" });
    expect(calls.at(-1)?.args).toEqual({ title: "Call mom", idempotency_key: "call_c" });
  });

  test("the tool loop stops at the tier's maximum number of steps", async () => {
    const userId = user();
    await h.device(userId, { task_list: () => [] });
    const first = turns(h);
    h.llm.onChat((_, recorded) => ({ toolCalls: [{ id: `call_${recorded.index}`, name: "task_list", args: {} }] }));
    try {
      const response = await h.chatJson(await h.token(userId, "free"), { text: "keep listing" });
      expect(response.status).toBe(200);
      expect(turns(h) - first).toBe(TIER_LIMITS.free.maxToolSteps);
      const before = turns(h);
      await h.chatJson(await h.token(userId, "pro"), { text: "keep listing" });
      expect(turns(h) - before).toBe(TIER_LIMITS.pro.maxToolSteps);
    } finally {
      h.llm.onChat(undefined);
    }
  });
});
