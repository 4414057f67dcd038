// Strategy: the AI SDK's real OpenAI provider (Chat Completions + Embeddings) talks HTTP to the
// fake OpenAI-compatible server, so these tests check both the server and the wiring of createLlm.
import { afterEach, describe, expect, test } from "bun:test";
import { embed, embedMany, generateText, Output, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { createLlm, type Llm } from "../../../src/shared/llm";
import { silentLogger } from "../../../src/shared/logger";
import { type FakeOpenAi, startFakeOpenAi } from "../../../src/shared/testing";

let fake: FakeOpenAi;
afterEach(() => fake?.close());

const llmFor = (server: FakeOpenAi): Llm =>
  createLlm(
    {
      NODE_ENV: "test",
      LLM_BASE_URL: server.url,
      LLM_API_KEY: "sk-test",
      LLM_CHAT_MODEL: "chat-model",
      LLM_CLASSIFY_MODEL: "classify-model",
      LLM_EMBEDDING_MODEL: "embed-model",
    },
    silentLogger(),
  );

const cosine = (a: number[], b: number[]) => a.reduce((sum, value, i) => sum + value * (b[i] ?? 0), 0);

describe("fake OpenAI server through the real provider", () => {
  test("streams text deltas in order and reports usage", async () => {
    fake = startFakeOpenAi();
    fake.script({ chunks: ["Hel", "lo ", "world"], usage: { prompt: 7, completion: 3 } });
    const llm = llmFor(fake);
    const result = streamText({ model: llm.chatModel, system: "be brief", prompt: "hi" });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);
    expect(deltas).toEqual(["Hel", "lo ", "world"]);
    expect((await result.usage).inputTokens).toBe(7);
    expect((await result.usage).outputTokens).toBe(3);
    const [request] = fake.chatRequests();
    expect(request?.authorization).toBe("Bearer sk-test");
    expect(request?.stream).toBe(true);
    expect(request?.body.model).toBe("chat-model");
    expect(request?.body.messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ]);
  });

  test("a streamed tool call reaches the tool with its arguments and the result reaches the next request", async () => {
    fake = startFakeOpenAi();
    fake.script({ toolCalls: [{ id: "call_1", name: "lookup", args: { city: "Rome" } }] }, { text: "It is sunny." });
    const llm = llmFor(fake);
    const seen: unknown[] = [];
    const result = streamText({
      model: llm.chatModel,
      prompt: "weather?",
      stopWhen: stepCountIs(3),
      tools: {
        lookup: tool({
          description: "weather for a city",
          inputSchema: z.object({ city: z.string() }),
          execute: async (input) => {
            seen.push(input);
            return { sky: "clear" };
          },
        }),
      },
    });
    expect(await result.text).toBe("It is sunny.");
    expect(seen).toEqual([{ city: "Rome" }]);
    const [first, second] = fake.chatRequests();
    expect(first?.body.tools?.map((each) => each.function.name)).toEqual(["lookup"]);
    const toolMessage = second?.body.messages.find((message) => message.role === "tool");
    expect(toolMessage).toEqual({ role: "tool", tool_call_id: "call_1", content: JSON.stringify({ sky: "clear" }) });
  });

  test("structured output: response_format carries the schema and the JSON content is parsed", async () => {
    fake = startFakeOpenAi();
    fake.script({ json: { facts: ["likes tea"] } });
    const llm = llmFor(fake);
    const { output } = await generateText({
      model: llm.classifyModel,
      prompt: "extract",
      output: Output.object({ schema: z.object({ facts: z.array(z.string()) }) }),
    });
    expect(output).toEqual({ facts: ["likes tea"] });
    const [request] = fake.chatRequests();
    expect(request?.stream).toBe(false);
    expect(request?.body.model).toBe("classify-model");
    expect(request?.body.response_format?.type).toBe("json_schema");
    expect(request?.body.response_format?.json_schema?.schema?.properties?.facts).toBeDefined();
  });

  test("embeddings are deterministic and similar texts are closer", async () => {
    fake = startFakeOpenAi({ embeddingDimensions: 64 });
    const llm = llmFor(fake);
    const { embeddings } = await embedMany({
      model: llm.embeddingModel,
      values: ["I live in Rome", "she lives in Rome", "quarterly tax report deadline"],
    });
    const again = await embed({ model: llm.embeddingModel, value: "I live in Rome" });
    const [rome, rome2, tax] = embeddings as [number[], number[], number[]];
    expect(rome).toHaveLength(64);
    expect(again.embedding).toEqual(rome);
    expect(cosine(rome, rome2)).toBeGreaterThan(cosine(rome, tax));
    expect(fake.embeddingRequests()[0]?.body).toMatchObject({ model: "embed-model", input: expect.any(Array) });
  });

  test("aborting a streaming call is observed by the server", async () => {
    fake = startFakeOpenAi();
    fake.script({ text: "this never ends", hang: true });
    const llm = llmFor(fake);
    const controller = new AbortController();
    const result = streamText({ model: llm.chatModel, prompt: "go", abortSignal: controller.signal });
    const reader = result.textStream[Symbol.asyncIterator]();
    expect((await reader.next()).value).toBe("this ");
    controller.abort();
    await fake.chatRequests()[0]?.abortedSignal;
    expect(fake.chatRequests()[0]?.aborted).toBe(true);
  });

  test("a handler computes replies from the request, and HTTP errors surface as errors", async () => {
    fake = startFakeOpenAi();
    fake.onChat((request) => ({ text: `echo ${request.messages.at(-1)?.content}` }));
    fake.script({ error: { status: 400, message: "bad model" } });
    const llm = llmFor(fake);
    await expect(generateText({ model: llm.chatModel, prompt: "x", maxRetries: 0 })).rejects.toThrow("bad model");
    const { text } = await generateText({ model: llm.chatModel, prompt: "ping" });
    expect(text).toBe("echo ping");
  });

  test("the first-token delay holds back the first chunk", async () => {
    fake = startFakeOpenAi({ firstTokenDelayMs: 80 });
    fake.script({ text: "late" });
    const started = performance.now();
    const result = streamText({ model: llmFor(fake).chatModel, prompt: "x" });
    for await (const _ of result.textStream) break;
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
  });
});
