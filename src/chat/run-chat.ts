import {
  convertToModelMessages,
  type LanguageModelUsage,
  stepCountIs,
  streamText,
  toUIMessageStream,
  type UIMessage,
  type UIMessageChunk,
} from "ai";
import { isDatabaseOutage, notFound } from "../shared/errors";
import { limitsFor, type Tier } from "../shared/tiers";
import { formatForSurface, SURFACE_FORMATS } from "./agent/formatter";
import { backgroundBlock, systemPrompt } from "./agent/prompts";
import { deviceToolset, targetDevice } from "./agent/toolset";
import type { ChatEngine } from "./engine";
import { createConversation, findConversation, recentMessages, recordUsage, saveMessage } from "./history";
import type { ChatContext, Surface } from "./model";
import { assertQuota, utcDay } from "./quota";
import { sanitizeContext, sanitizeMessage } from "./sanitize";

export interface RunChatInput {
  userId: string;
  tier: Tier;
  surface: Surface;
  chatId?: string;
  text: string;
  context?: ChatContext;
  /** The device that sent the message; its tools are preferred. */
  deviceId?: string;
  /** Aborting stops the model request upstream and ends the turn as cancelled. */
  signal?: AbortSignal;
  /** Called once the turn is accepted (validated, within quota, conversation known), before any chunk. */
  onStart?: (started: { chatId: string; messageId: string }) => void;
  /** Every AI SDK UI-message-stream chunk, in order, with its sequence number from 0. */
  onChunk: (chunk: UIMessageChunk, seq: number) => void | Promise<void>;
}

export interface ChatUsage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
}

export interface ChatResult {
  chatId: string;
  messageId: string;
  usage: ChatUsage;
  /** The model's finish reason, or `cancelled` / `error`. */
  finishReason: string;
  text: string;
  parts: UIMessage["parts"];
}

export const usageView = (result: ChatResult) => ({
  input_tokens: result.usage.inputTokens,
  output_tokens: result.usage.outputTokens,
  total_tokens: result.usage.totalTokens,
});

const addUsage = (total: ChatUsage, step: LanguageModelUsage): void => {
  total.inputTokens += step.inputTokens ?? 0;
  total.outputTokens += step.outputTokens ?? 0;
  total.totalTokens = total.inputTokens + total.outputTokens;
};

/**
 * One chat turn: checks (input, conversation ownership, daily quota) before the model is called,
 * then streams the reply as UI message chunks while the model may call the device's tools up to
 * the tier's step limit, persists both messages and the usage, and schedules memory extraction.
 */
export async function runChat(engine: ChatEngine, input: RunChatInput): Promise<ChatResult> {
  const startedAt = performance.now();
  const { db, config, logger } = engine;
  const text = sanitizeMessage(input.text, config.maxInputChars);
  const context = sanitizeContext(input.context);
  const existing = input.chatId ? await findConversation(db, input.userId, input.chatId) : undefined;
  if (input.chatId && !existing) throw notFound("conversation");
  const limits = limitsFor(input.tier);
  const quotaDay = engine.now();
  assertQuota(
    await engine.quota.consume("chat_messages", input.userId, limits.chatMessagesPerDay, quotaDay),
    "chat message",
  );

  // The conversation id is ours, so the reply can start while its rows are being written.
  const chatId = existing?.id ?? crypto.randomUUID();
  const userMessageId = crypto.randomUUID();
  const turnStartedAt = engine.now();
  const userParts = [{ type: "text", text }];
  const persisted = (async () => {
    if (!existing) {
      await createConversation(db, { id: chatId, userId: input.userId, surface: input.surface, title: titleOf(text) });
    }
    await saveMessage(db, { id: userMessageId, conversationId: chatId, role: "user", parts: userParts, context });
  })();
  persisted.catch(() => {}); // awaited below; this only keeps an early rejection from going unhandled
  const controller = new AbortController();
  const abort = () => controller.abort(input.signal?.reason);
  if (input.signal?.aborted) abort();
  input.signal?.addEventListener("abort", abort, { once: true });
  const toolOptions = {
    rpc: engine.rpc,
    userId: input.userId,
    deviceId: input.deviceId,
    deadlineMs: config.toolDeadlineMs,
    logger,
    onCall: (name: string, outcome: "ok" | "error") => engine.metrics.toolCalls.inc({ tool: name, outcome }),
  };
  const [earlier, memories, device] = await Promise.all([
    existing && config.historyMessages > 0 ? recentMessages(db, chatId, config.historyMessages + 1) : [],
    engine.memory.recall(input.userId, text, controller.signal),
    targetDevice(toolOptions),
  ]);
  // The history query may or may not see this turn's own message, written concurrently.
  const others = earlier.filter((message) => message.id !== userMessageId);
  const history = others.slice(Math.max(0, others.length - config.historyMessages));
  const messageId = crypto.randomUUID();
  input.onStart?.({ chatId, messageId });

  const background = backgroundBlock(memories, context);
  const userMessage: UIMessage = {
    id: messageId,
    role: "user",
    parts: [...(background ? [{ type: "text" as const, text: background }] : []), { type: "text", text }],
  };
  const tools = deviceToolset(toolOptions, device);
  const usage: ChatUsage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };
  let failure: unknown;
  const result = streamText({
    model: engine.llm.chatModel,
    system: systemPrompt(input.surface, engine.now()),
    messages: await convertToModelMessages([...history, userMessage], { tools, ignoreIncompleteToolCalls: true }),
    tools,
    stopWhen: stepCountIs(limits.maxToolSteps),
    maxOutputTokens: SURFACE_FORMATS[input.surface].maxOutputTokens,
    abortSignal: controller.signal,
    maxRetries: 1,
    experimental_transform: formatForSurface(input.surface),
    onStepEnd: (step) => addUsage(usage, step.usage),
    onError: ({ error }) => {
      failure = error;
    },
  });

  let final: UIMessage | undefined;
  const stream = toUIMessageStream({
    stream: result.stream,
    tools,
    generateMessageId: () => messageId,
    messageMetadata: ({ part }) => (part.type === "start" ? { chat_id: chatId } : undefined),
    onError: (error) => {
      failure ??= error;
      return "the language model is unavailable";
    },
    redactToolErrors: false,
    onEnd: ({ responseMessage }) => {
      final = responseMessage;
    },
  });
  let seq = 0;
  let firstText = true;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      if (firstText && chunk.type === "text-delta") {
        firstText = false;
        engine.metrics.firstChunk.observe((performance.now() - startedAt) / 1000);
      }
      await input.onChunk(chunk, seq++);
    }
  } catch (error) {
    // The consumer went away (closed socket or response): stop the model as well.
    controller.abort(error);
    await reader.cancel().catch(() => {});
  } finally {
    input.signal?.removeEventListener("abort", abort);
  }

  const cancelled = controller.signal.aborted;
  const finishReason = cancelled
    ? "cancelled"
    : failure
      ? "error"
      : await result.finishReason.then(String, () => "error");
  if (failure && !cancelled) logger.warn({ err: failure, chat_id: chatId }, "chat model call failed");
  if (finishReason === "error" && usage.outputTokens === 0) {
    // The model failed before answering anything: the user got nothing to count against the day.
    await engine.quota
      .refund("chat_messages", input.userId, quotaDay)
      .catch((error) => logger.warn({ err: error }, "quota refund failed"));
  }
  // Written as the turn began; during an outage the reply store writes it with the reply.
  await persisted.catch((error: unknown) => {
    if (!isDatabaseOutage(error)) throw error;
  });
  const parts = final?.parts ?? [];
  const reply = parts.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("");
  const status = cancelled ? "cancelled" : finishReason === "error" ? "error" : "completed";
  await engine.replies.store({
    conversation: existing
      ? undefined
      : { id: chatId, userId: input.userId, surface: input.surface, title: titleOf(text), createdAt: turnStartedAt },
    user: { id: userMessageId, conversationId: chatId, parts: userParts, context, createdAt: turnStartedAt },
    assistant: {
      id: messageId,
      conversationId: chatId,
      parts,
      status,
      ...usageColumns(usage),
      createdAt: engine.now(),
    },
  });
  await recordUsage(db, input.userId, utcDay(engine.now()), {
    messages: 1,
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
  }).catch((error) => logger.warn({ err: error }, "usage not recorded"));
  engine.metrics.tokens.inc({ kind: "input" }, usage.inputTokens);
  engine.metrics.tokens.inc({ kind: "output" }, usage.outputTokens);
  engine.metrics.turns.inc({ surface: input.surface, outcome: finishReason });
  if (!cancelled && finishReason !== "error" && reply.length > 0) {
    engine.memory.remember(input.userId, { user: text, assistant: reply });
  }
  return { chatId, messageId, usage, finishReason, text: reply, parts };
}

const usageColumns = (usage: ChatUsage) => ({ inputTokens: usage.inputTokens, outputTokens: usage.outputTokens });

function titleOf(text: string): string {
  const line = text.split("\n", 1)[0] ?? text;
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}
