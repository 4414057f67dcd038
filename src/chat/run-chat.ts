import {
  convertToModelMessages,
  type LanguageModelUsage,
  stepCountIs,
  streamText,
  type ToolSet,
  toUIMessageStream,
  type UIMessage,
  type UIMessageChunk,
} from "ai";
import { isDatabaseOutage, notFound } from "../shared/errors";
import { limitsFor, type Tier } from "../shared/tiers";
import { documentsToolset } from "./agent/documents";
import { formatForSurface, SURFACE_FORMATS } from "./agent/formatter";
import { pluginToolset } from "./agent/plugins";
import { backgroundBlock, systemPrompt } from "./agent/prompts";
import { deviceToolset, refuseUnofferedTools, targetDevice } from "./agent/toolset";
import type { ChatEngine } from "./engine";
import {
  type ConversationRow,
  createConversation,
  findConversation,
  recentMessages,
  recordUsage,
  type StoredTurn,
  saveMessage,
} from "./history";
import type { ChatContext, Surface } from "./model";
import { assertQuota, utcDay } from "./quota";
import { sanitizeContext, sanitizeMessage } from "./sanitize";
import { partsFromChunks } from "./turns/partial";

export interface RunChatInput {
  userId: string;
  tier: Tier;
  surface: Surface;
  /** How the turn reached us, for its log line: a device socket, SSE, or one JSON reply. */
  transport: ChatTransport;
  chatId?: string;
  /** The id a conversation this turn starts gets (known before the turn is admitted); random if absent. */
  newChatId?: string;
  text: string;
  context?: ChatContext;
  /** The device that sent the message; its tools are preferred. */
  deviceId?: string;
  /**
   * Aborting stops the model request upstream and ends the turn with the abort's reason as its
   * finish reason (`stopped` or `interrupted`, see StopReason); what was streamed is stored.
   */
  signal?: AbortSignal;
  /** Called once the quota unit is taken, with what any instance needs to store the turn (see TurnFacts). */
  onAccepted?: (accepted: AcceptedTurn) => void | Promise<void>;
  /** Called once the turn is accepted (validated, within quota, conversation known), before any chunk. */
  onStart?: (started: { chatId: string; messageId: string }) => void;
  /** Every AI SDK UI-message-stream chunk, in order, with its sequence number from 0. */
  onChunk: (chunk: UIMessageChunk, seq: number) => void | Promise<void>;
}

export type ChatTransport = "ws" | "sse" | "json";

/** Why a turn was cut: a stop asked for by the user, or its instance going away (shutdown). */
export type StopReason = "stopped" | "interrupted";
const stopReasonOf = (signal: AbortSignal): StopReason => (signal.reason === "interrupted" ? "interrupted" : "stopped");

/** What a turn stores, fixed once it is accepted. */
export interface AcceptedTurn {
  stored: Omit<StoredTurn, "assistant"> & {
    assistant: Omit<StoredTurn["assistant"], "parts" | "status" | "inputTokens" | "outputTokens">;
  };
  quotaDay: Date;
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
  /** The model's finish reason, or `stopped` / `interrupted` / `error`. */
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
 * the tier's step limit, stores both messages and the usage, and schedules memory extraction.
 */
export async function runChat(engine: ChatEngine, input: RunChatInput): Promise<ChatResult> {
  const turn = await admitTurn(engine, input);
  const controller = new AbortController();
  const abort = () => controller.abort(input.signal?.reason);
  if (input.signal?.aborted) abort();
  input.signal?.addEventListener("abort", abort, { once: true });
  // A turn that throws once accepted (its prompt or its storage failed) still ends, and is counted.
  let outcome = "error";
  // What the turn opened for its tools (plugins' MCP connections), closed once it has ended.
  const closers: Array<() => Promise<void>> = [];
  try {
    await input.onAccepted?.(acceptedTurn(engine, input, turn));
    const prompt = await preparePrompt(engine, input, turn, controller.signal, closers);
    input.onStart?.({ chatId: turn.chatId, messageId: turn.messageId });
    const streamed = await streamReply(engine, input, turn, prompt, controller);
    const finishReason = await settleOutcome(engine, input, turn, streamed, controller.signal);
    const result = await storeReply(engine, input, turn, streamed, finishReason);
    outcome = finishReason;
    await accountTurn(engine, input, turn, result);
    return result;
  } catch (error) {
    if (controller.signal.aborted) outcome = stopReasonOf(controller.signal);
    throw error;
  } finally {
    input.signal?.removeEventListener("abort", abort);
    endTurn(engine, input, turn, outcome);
    for (const close of closers) {
      void close().catch((error) => engine.logger.warn({ err: error }, "turn tools not closed"));
    }
  }
}

/**
 * Every accepted turn ends here, once: `chat_turns_total{surface,outcome}` and one log line. An
 * SSE turn that fails is still HTTP 200, so this line and counter are where its failure shows.
 */
function endTurn(engine: ChatEngine, input: RunChatInput, turn: Turn, outcome: string): void {
  engine.metrics.turns.inc({ surface: input.surface, outcome });
  const fields = {
    chat_id: turn.chatId,
    message_id: turn.messageId,
    user_id: input.userId,
    device_id: input.deviceId,
    surface: input.surface,
    transport: input.transport,
    outcome,
    ms: Math.round(performance.now() - turn.startedAtMs),
  };
  if (outcome === "error") engine.logger.warn(fields, "chat turn ended");
  else engine.logger.info(fields, "chat turn ended");
}

/** What is fixed once a turn is accepted. */
interface Turn {
  text: string;
  context: ChatContext | undefined;
  /** The conversation the turn continues; undefined when the turn starts one. */
  existing: ConversationRow | undefined;
  limits: ReturnType<typeof limitsFor>;
  /** The day the quota unit was taken from (a refund goes back to the same day). */
  quotaDay: Date;
  chatId: string;
  userMessageId: string;
  messageId: string;
  userParts: Array<{ type: "text"; text: string }>;
  startedAt: Date;
  startedAtMs: number;
  /** The conversation and user message, written while the reply is prepared. */
  persisted: Promise<void>;
}

/** Validates the input and the conversation, takes the quota unit, and starts writing the user's message. */
async function admitTurn(engine: ChatEngine, input: RunChatInput): Promise<Turn> {
  const startedAtMs = performance.now();
  const { db, config } = engine;
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
  const chatId = existing?.id ?? input.newChatId ?? crypto.randomUUID();
  const userMessageId = crypto.randomUUID();
  const userParts = [{ type: "text" as const, text }];
  const persisted = (async () => {
    if (!existing) {
      await createConversation(db, { id: chatId, userId: input.userId, surface: input.surface, title: titleOf(text) });
    }
    await saveMessage(db, { id: userMessageId, conversationId: chatId, role: "user", parts: userParts, context });
  })();
  persisted.catch(() => {}); // awaited in storeReply; this only keeps an early rejection from going unhandled
  return {
    text,
    context,
    existing,
    limits,
    quotaDay,
    chatId,
    userMessageId,
    messageId: crypto.randomUUID(),
    userParts,
    startedAt: engine.now(),
    startedAtMs,
    persisted,
  };
}

interface Prompt {
  history: UIMessage[];
  userMessage: UIMessage;
  tools: ToolSet;
}

/** Earlier messages, recalled memories, the device's tools and the plugins' tools, gathered at once. */
async function preparePrompt(
  engine: ChatEngine,
  input: RunChatInput,
  turn: Turn,
  signal: AbortSignal,
  closers: Array<() => Promise<void>>,
): Promise<Prompt> {
  const { config } = engine;
  const toolOptions = {
    rpc: engine.rpc,
    userId: input.userId,
    deviceId: input.deviceId,
    deadlineMs: config.toolDeadlineMs,
    logger: engine.logger,
    onCall: (name: string, outcome: "ok" | "error") => engine.metrics.toolCalls.inc({ tool: name, outcome }),
  };
  const target = targetDevice(toolOptions);
  const pluginsReady = pluginToolset({
    plugins: engine.plugins,
    userId: input.userId,
    tier: input.tier,
    rpc: engine.rpc,
    device: target,
    deviceDeadlineMs: config.toolDeadlineMs,
    logger: engine.logger,
    signal,
    onCall: (outcome) => engine.metrics.pluginCalls.inc({ outcome }),
  });
  closers.push(async () => (await pluginsReady).close());
  const [earlier, memories, device, plugins] = await Promise.all([
    turn.existing && config.historyMessages > 0
      ? recentMessages(engine.db, turn.chatId, config.historyMessages + 1)
      : [],
    engine.memory.recall(input.userId, turn.text, signal),
    target,
    pluginsReady,
  ]);
  // The history query may or may not see this turn's own message, written concurrently.
  const others = earlier.filter((message) => message.id !== turn.userMessageId);
  const background = backgroundBlock(memories, turn.context);
  return {
    history: others.slice(Math.max(0, others.length - config.historyMessages)),
    userMessage: {
      id: turn.messageId,
      role: "user",
      parts: [...(background ? [{ type: "text" as const, text: background }] : []), { type: "text", text: turn.text }],
    },
    tools: {
      ...deviceToolset(toolOptions, device),
      ...documentsToolset(engine.documents, input.userId, signal),
      ...plugins.tools,
    },
  };
}

interface Streamed {
  result: ReturnType<typeof streamText>;
  final: UIMessage | undefined;
  /** Every chunk handed on, for rebuilding the message of a turn cut before its end. */
  chunks: UIMessageChunk[];
  usage: ChatUsage;
  failure: unknown;
}

/** Calls the model and hands every UI-message chunk to the caller, in order, until the reply ends. */
async function streamReply(
  engine: ChatEngine,
  input: RunChatInput,
  turn: Turn,
  prompt: Prompt,
  controller: AbortController,
): Promise<Streamed> {
  const usage: ChatUsage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };
  const seen: { failure: unknown; final: UIMessage | undefined } = { failure: undefined, final: undefined };
  const result = streamText({
    model: engine.llm.chatModel,
    system: systemPrompt(input.surface, engine.now()),
    messages: await convertToModelMessages([...prompt.history, prompt.userMessage], {
      tools: prompt.tools,
      ignoreIncompleteToolCalls: true,
    }),
    tools: prompt.tools,
    stopWhen: stepCountIs(turn.limits.maxToolSteps),
    repairToolCall: refuseUnofferedTools(engine.logger, input.userId),
    maxOutputTokens: SURFACE_FORMATS[input.surface].maxOutputTokens,
    abortSignal: controller.signal,
    maxRetries: 1,
    experimental_transform: formatForSurface(input.surface),
    onStepEnd: (step) => addUsage(usage, step.usage),
    onError: ({ error }) => {
      seen.failure = error;
    },
  });
  const stream = toUIMessageStream({
    stream: result.stream,
    tools: prompt.tools,
    generateMessageId: () => turn.messageId,
    messageMetadata: ({ part }) => (part.type === "start" ? { chat_id: turn.chatId } : undefined),
    onError: (error) => {
      seen.failure ??= error;
      return "the language model is unavailable";
    },
    redactToolErrors: false,
    onEnd: ({ responseMessage }) => {
      seen.final = responseMessage;
    },
  });
  let seq = 0;
  let firstText = true;
  const chunks: UIMessageChunk[] = [];
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      if (firstText && chunk.type === "text-delta") {
        firstText = false;
        engine.metrics.firstChunk.observe((performance.now() - turn.startedAtMs) / 1000);
      }
      chunks.push(chunk);
      await input.onChunk(chunk, seq++);
    }
  } catch (error) {
    // The stream failed, or (with a caller that throws) its consumer went away: stop the model as well.
    if (!controller.signal.aborted) controller.abort(error);
    await reader.cancel().catch(() => {});
  }
  return { result, usage, chunks, ...seen };
}

/**
 * The turn's finish reason. A turn the model failed before answering, or one interrupted before
 * any chunk, gives its quota unit back: the user got nothing to count against the day.
 */
async function settleOutcome(
  engine: ChatEngine,
  input: RunChatInput,
  turn: Turn,
  streamed: Streamed,
  signal: AbortSignal,
): Promise<string> {
  const stopped = signal.aborted && !(signal.reason instanceof Error) ? stopReasonOf(signal) : undefined;
  const finishReason =
    stopped ?? (streamed.failure ? "error" : await streamed.result.finishReason.then(String, () => "error"));
  if (streamed.failure && !stopped) {
    engine.logger.warn({ err: streamed.failure, chat_id: turn.chatId }, "chat model call failed");
  }
  const failedEmpty = finishReason === "error" && streamed.usage.outputTokens === 0;
  const interruptedEmpty = finishReason === "interrupted" && (await partsFromChunks(streamed.chunks)).length === 0;
  if (failedEmpty || interruptedEmpty) await refundTurn(engine, input.userId, turn.quotaDay);
  return finishReason;
}

export async function refundTurn(engine: ChatEngine, userId: string, quotaDay: Date): Promise<void> {
  await engine.quota
    .refund("chat_messages", userId, quotaDay)
    .catch((error) => engine.logger.warn({ err: error }, "quota refund failed"));
}

/** Stores the turn through the reply store, which holds it through a database outage. */
async function storeReply(
  engine: ChatEngine,
  input: RunChatInput,
  turn: Turn,
  streamed: Streamed,
  finishReason: string,
): Promise<ChatResult> {
  // Written as the turn began; during an outage the reply store writes it with the reply.
  await turn.persisted.catch((error: unknown) => {
    if (!isDatabaseOutage(error)) throw error;
  });
  // A cut turn's own end message may be missing or partial: what it streamed is rebuilt from its chunks.
  const cut = finishReason === "stopped" || finishReason === "interrupted";
  const parts = cut ? await partsFromChunks(streamed.chunks) : (streamed.final?.parts ?? []);
  const { chatId } = turn;
  const { stored } = acceptedTurn(engine, input, turn);
  await engine.replies.store({
    ...stored,
    assistant: {
      ...stored.assistant,
      parts,
      status: messageStatus(finishReason),
      ...usageColumns(streamed.usage),
      createdAt: engine.now(),
    },
  });
  const text = parts.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("");
  return { chatId, messageId: turn.messageId, usage: streamed.usage, finishReason, text, parts };
}

/** Usage, metrics, and what the turn teaches the memory. */
async function accountTurn(engine: ChatEngine, input: RunChatInput, turn: Turn, result: ChatResult): Promise<void> {
  const { usage, finishReason } = result;
  await recordUsage(engine.db, input.userId, utcDay(engine.now()), {
    messages: 1,
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
  }).catch((error) => engine.logger.warn({ err: error }, "usage not recorded"));
  engine.metrics.tokens.inc({ kind: "input" }, usage.inputTokens);
  engine.metrics.tokens.inc({ kind: "output" }, usage.outputTokens);
  if (messageStatus(finishReason) === "completed" && result.text.length > 0) {
    engine.memory.remember(input.userId, { user: turn.text, assistant: result.text });
  }
}

/** The stored message's status: `completed`, or how it was cut (`stopped`, `interrupted`), or `error`. */
export const messageStatus = (finishReason: string): string =>
  ["stopped", "interrupted", "error"].includes(finishReason) ? finishReason : "completed";

/** The rows a turn stores, known as soon as it is accepted. */
function acceptedTurn(engine: ChatEngine, input: RunChatInput, turn: Turn): AcceptedTurn {
  return {
    quotaDay: turn.quotaDay,
    stored: {
      conversation: turn.existing
        ? undefined
        : {
            id: turn.chatId,
            userId: input.userId,
            surface: input.surface,
            title: titleOf(turn.text),
            createdAt: turn.startedAt,
          },
      user: {
        id: turn.userMessageId,
        conversationId: turn.chatId,
        parts: turn.userParts,
        context: turn.context,
        createdAt: turn.startedAt,
      },
      assistant: { id: turn.messageId, conversationId: turn.chatId, createdAt: engine.now() },
    },
  };
}

const usageColumns = (usage: ChatUsage) => ({ inputTokens: usage.inputTokens, outputTokens: usage.outputTokens });

function titleOf(text: string): string {
  const line = text.split("\n", 1)[0] ?? text;
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}
