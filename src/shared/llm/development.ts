import { countWords, hashEmbedding } from "./hash-embedding";
import {
  type ChatCompletionRequest,
  completionBody,
  type EmbeddingsRequest,
  embeddingsBody,
  errorBody,
  type JsonSchema,
  messageText,
  type ScriptedReply,
  type ScriptedToolCall,
  sseStream,
  type WireMessage,
} from "./wire";

export const DEVELOPMENT_LABEL = "[development model]";

/**
 * The built-in development model: deterministic answers to Chat Completions requests, so a person
 * can try every flow without an LLM. It echoes, calls a tool when the message names one (optionally
 * followed by JSON arguments: `task_list {"status":"open"}`), reports tool results, and fills
 * structured-output schemas (string lists get the user's first-person statements, which makes
 * long-term memory visible in development).
 */
export function developmentReply(request: ChatCompletionRequest): ScriptedReply {
  const messages = request.messages;
  const last = messages.at(-1);
  const schema = request.response_format?.json_schema?.schema;
  if (request.response_format?.type === "json_schema" && schema) {
    return { json: sampleFromSchema(schema, firstPersonStatements(messages)) };
  }
  if (request.response_format?.type === "json_object") return { json: {} };
  if (last?.role === "tool") {
    const result = messageText(last);
    const call = findCall(messages, last.tool_call_id);
    return {
      text: `${DEVELOPMENT_LABEL} ${call ?? "The tool"} answered: ${result.length > 400 ? `${result.slice(0, 400)}…` : result}`,
    };
  }
  const userText = messageText(last).trim();
  const toolCall = requestedTool(request, userText);
  if (toolCall) return { toolCalls: [toolCall], usage: { prompt: promptWords(messages), completion: 5 } };
  const reply = `${DEVELOPMENT_LABEL} No language model is configured (set LLM_BASE_URL). You said: "${userText.slice(0, 500)}"`;
  return { text: reply, usage: { prompt: promptWords(messages), completion: countWords(reply) } };
}

function promptWords(messages: WireMessage[]): number {
  return messages.reduce((sum, message) => sum + countWords(messageText(message)), 0);
}

function findCall(messages: WireMessage[], id: string | undefined): string | undefined {
  for (const message of messages) {
    const call = message.tool_calls?.find((each) => each.id === id);
    if (call) return call.function.name;
  }
  return undefined;
}

function requestedTool(request: ChatCompletionRequest, text: string): ScriptedToolCall | undefined {
  for (const tool of request.tools ?? []) {
    const name = tool.function.name;
    const at = text.indexOf(name);
    if (at === -1) continue;
    const rest = text.slice(at + name.length).trim();
    let args: unknown = sampleFromSchema(tool.function.parameters ?? { type: "object" }, []);
    if (rest.startsWith("{")) {
      try {
        args = JSON.parse(rest);
      } catch {
        // Not JSON: keep the sample arguments.
      }
    }
    return { id: `call_dev_${crypto.randomUUID().slice(0, 8)}`, name, args };
  }
  return undefined;
}

/** Sentences in the user's turns that speak about the user ("I…", "my…"), for memory extraction. */
function firstPersonStatements(messages: WireMessage[]): string[] {
  const text = messages
    .filter((message) => message.role === "user")
    .map(messageText)
    .join("\n");
  return text
    .split("\n")
    .filter((line) => !/^\s*assistant:/i.test(line))
    .flatMap((line) => line.split(/(?<=[.!?])\s+/))
    .map((sentence) => sentence.replace(/^\s*user:\s*/i, "").trim())
    .filter((sentence) => /\b(i|i'm|i am|my|me)\b/i.test(sentence) && sentence.length <= 300);
}

/** A value that satisfies the schema; string arrays take `strings`, other strings stay short. */
export function sampleFromSchema(schema: JsonSchema, strings: string[]): unknown {
  if (schema.enum?.length) return schema.enum[0];
  if (schema.anyOf?.length) return sampleFromSchema(schema.anyOf[0]!, strings);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(schema.properties ?? {})) out[key] = sampleFromSchema(value, strings);
      return out;
    }
    case "array": {
      const items = schema.items ?? {};
      if (items.type === "string") return strings;
      return [];
    }
    case "string":
      return "development";
    case "number":
    case "integer":
      return 0;
    case "boolean":
      return false;
    default:
      return null;
  }
}

/** A `fetch` that answers the OpenAI API in process with the development model. */
export const developmentFetch = (async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  const request = new Request(input, init);
  const path = new URL(request.url).pathname;
  const body = (await request.json().catch(() => undefined)) as Record<string, unknown> | undefined;
  if (!body) return Response.json(errorBody("body must be JSON"), { status: 400 });
  if (path.endsWith("/embeddings")) {
    const { input: values, model, dimensions } = body as unknown as EmbeddingsRequest;
    const list = Array.isArray(values) ? values : [values];
    const vectors = list.map((value) => hashEmbedding(value, dimensions));
    return Response.json(
      embeddingsBody(
        vectors,
        model,
        list.reduce((sum, v) => sum + countWords(v), 0),
      ),
    );
  }
  if (path.endsWith("/chat/completions")) {
    const chat = body as unknown as ChatCompletionRequest;
    const reply = developmentReply(chat);
    if (!chat.stream) return Response.json(completionBody(reply, chat.model));
    return new Response(sseStream(reply, chat.model, { signal: request.signal }), {
      headers: { "content-type": "text/event-stream" },
    });
  }
  return Response.json(errorBody(`no such endpoint ${path}`), { status: 404 });
}) as typeof fetch;
