// The built-in development model answers in process through the real OpenAI provider code.
import { describe, expect, test } from "bun:test";
import { embed, generateText, Output, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { ConfigError } from "../../../src/shared/env";
import { createLlm, DEVELOPMENT_LABEL, type LlmEnv } from "../../../src/shared/llm";
import { silentLogger } from "../../../src/shared/logger";

const base: LlmEnv = {
  NODE_ENV: "development",
  LLM_BASE_URL: undefined,
  LLM_API_KEY: undefined,
  LLM_CHAT_MODEL: "gpt-4o-mini",
  LLM_CLASSIFY_MODEL: "gpt-4o-mini",
  LLM_EMBEDDING_MODEL: "text-embedding-3-small",
};

describe("createLlm", () => {
  test("refuses to start in production without LLM_BASE_URL", () => {
    expect(() => createLlm({ ...base, NODE_ENV: "production" }, silentLogger())).toThrow(ConfigError);
  });

  test("uses the configured endpoint when LLM_BASE_URL is set", () => {
    const llm = createLlm({ ...base, NODE_ENV: "production", LLM_BASE_URL: "http://127.0.0.1:1/v1" }, silentLogger());
    expect(llm.development).toBe(false);
    expect(llm.chatModel.modelId).toBe("gpt-4o-mini");
  });
});

describe("development model", () => {
  const llm = createLlm(base, silentLogger());

  test("is labelled and streams a deterministic echo", async () => {
    expect(llm.development).toBe(true);
    const run = async () => {
      const result = streamText({ model: llm.chatModel, prompt: "hello there" });
      const deltas: string[] = [];
      for await (const delta of result.textStream) deltas.push(delta);
      return deltas;
    };
    const first = await run();
    expect(first.length).toBeGreaterThan(3);
    expect(first.join("")).toStartWith(DEVELOPMENT_LABEL);
    expect(first.join("")).toContain('"hello there"');
    expect(await run()).toEqual(first);
  });

  test("calls a tool the message names, with JSON arguments, and reports its result", async () => {
    const calls: unknown[] = [];
    const result = streamText({
      model: llm.chatModel,
      prompt: 'please task_list {"status":"open"}',
      stopWhen: stepCountIs(3),
      tools: {
        task_list: tool({
          inputSchema: z.object({ status: z.string().optional() }),
          execute: async (input) => {
            calls.push(input);
            return [{ id: "t1", title: "Buy milk" }];
          },
        }),
      },
    });
    const text = await result.text;
    expect(calls).toEqual([{ status: "open" }]);
    expect(text).toContain("task_list answered");
    expect(text).toContain("Buy milk");
  });

  test("answers structured-output requests with the user's first-person statements", async () => {
    const { output } = await generateText({
      model: llm.classifyModel,
      prompt: "user: My sister is called Anna. The weather is nice. I work as a nurse.",
      output: Output.object({ schema: z.object({ facts: z.array(z.string()) }) }),
    });
    expect(output.facts).toEqual(["My sister is called Anna.", "I work as a nurse."]);
  });

  test("embeds deterministically", async () => {
    const a = await embed({ model: llm.embeddingModel, value: "project deadline" });
    const b = await embed({ model: llm.embeddingModel, value: "project deadline" });
    expect(a.embedding).toEqual(b.embedding);
    expect(a.embedding.length).toBeGreaterThan(16);
  });
});
