// Hostile device frames against the real gateway and chat engine: a raw socket plays a device
// whose `tool_result` frames carry NUL characters or nesting 100,000 deep while a chat turn waits
// on them. The model is the fake OpenAI-compatible server (harness.ts); the turn's messages are
// read back from PostgreSQL through the history route.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rawSocket } from "./gateway/helpers";
import { type ChatHarness, promptOf, startChat, turns } from "./harness";

let h: ChatHarness;
beforeAll(async () => {
  // Longer than the test's own timeout: a turn that completes did not wait for the deadline.
  h = await startChat({ env: { CHAT_TOOL_DEADLINE_MS: "30000" } });
});
afterAll(() => h.ctx.close());

const user = () => `user-${crypto.randomUUID()}`;

/** A raw device of a new user, past `welcome`, offering `task_list`. */
async function device() {
  const userId = user();
  const token = await h.token(userId);
  const socket = await rawSocket(h.first.wsUrl);
  socket.send({ type: "hello", token, device_id: `d-${userId}`, tools: ["task_list"], protocol: 1 });
  await socket.next("welcome");
  return { socket, token };
}

/**
 * A chat turn whose one tool call the device answers with `answer` (raw text, id filled in); the
 * reply to the HTTP request and the conversation as stored.
 */
async function turnAnswered(answer: (id: string) => string) {
  const { socket, token } = await device();
  h.llm.script({ toolCalls: [{ id: "call_1", name: "task_list", args: {} }] }, { text: "Here is your list." });
  const first = turns(h);
  const reply = h.chatJson(token, { text: "What is on my list?" });
  const call = await socket.next("tool_call");
  socket.ws.send(answer(String(call.id)));
  const response = await reply;
  const body = (await response.json()) as { chat_id: string; text: string };
  const stored = (await (await h.get(token, `/conversations/${body.chat_id}`)).json()) as {
    messages: Array<{ role: string; parts: Array<{ type: string; text?: string }> }>;
  };
  const texts = stored.messages.map((message) => [
    message.role,
    message.parts
      .filter((part) => part.type === "text")
      .map((part) => part.text)
      .join(""),
  ]);
  const toolMessage = promptOf(h.llm, first + 1).messages.find((message) => message.role === "tool");
  return { socket, callId: String(call.id), status: response.status, text: body.text, texts, toolMessage };
}

describe("tool_result frames are sanitized like HTTP bodies", () => {
  test("NUL characters in a result are stripped; the turn and its reply are stored", async () => {
    const outcome = await turnAnswered((id) =>
      JSON.stringify({ type: "tool_result", id, ok: true, result: [{ title: "Pay\u0000 rent\u202e" }] }),
    );
    expect(outcome.toolMessage?.content).toBe(JSON.stringify([{ title: "Pay rent" }]));
    expect({ status: outcome.status, text: outcome.text, texts: outcome.texts }).toEqual({
      status: 200,
      text: "Here is your list.",
      texts: [
        ["user", "What is on my list?"],
        ["assistant", "Here is your list."],
      ],
    });
    expect(outcome.socket.frames.filter((frame) => frame.type === "error")).toEqual([]);
  });

  const refused: Array<[string, (id: string) => string]> = [
    [
      "a NUL character in a field name",
      (id) => JSON.stringify({ type: "tool_result", id, ok: true, result: { "a\u0000": 1 } }),
    ],
    [
      "an array nested 100,000 deep",
      (id) =>
        `{"type":"tool_result","id":${JSON.stringify(id)},"ok":true,"result":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
    ],
  ];
  for (const [name, answer] of refused) {
    test(`${name}: an error frame naming the call, the tool fails at once, the reply is stored`, async () => {
      const outcome = await turnAnswered(answer);
      expect(await outcome.socket.next("error")).toEqual({
        type: "error",
        code: "invalid_frame",
        message: expect.any(String),
        ref: outcome.callId,
      });
      expect(outcome.toolMessage?.content).toContain("invalid_result");
      expect({ status: outcome.status, texts: outcome.texts }).toEqual({
        status: 200,
        texts: [
          ["user", "What is on my list?"],
          ["assistant", "Here is your list."],
        ],
      });
      // The socket is still usable.
      outcome.socket.send({ type: "ping" });
      expect(await outcome.socket.next("pong")).toEqual({ type: "pong" });
    });
  }
});

describe("other frames", () => {
  test("a frame nested 100,000 deep outside any call is an error frame with its ref, and the socket stays", async () => {
    const { socket } = await device();
    socket.ws.send(
      `{"type":"chat","request_id":"r1","surface":"home","text":"hi","context":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
    );
    expect(await socket.next("error")).toEqual({
      type: "error",
      code: "invalid_frame",
      message: expect.stringContaining("nesting"),
      ref: "r1",
    });
    socket.send({ type: "ping" });
    expect(await socket.next("pong")).toEqual({ type: "pong" });
  });
});
