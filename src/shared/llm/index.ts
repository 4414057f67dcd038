import { createOpenAI } from "@ai-sdk/openai";
import { ConfigError, type Env } from "../env";
import type { Logger } from "../logger";
import { DEVELOPMENT_LABEL, developmentFetch } from "./development";

export { DEVELOPMENT_LABEL } from "./development";
export { HASH_EMBEDDING_DIMENSIONS, hashEmbedding } from "./hash-embedding";

type Provider = ReturnType<typeof createOpenAI>;
export type ChatModel = ReturnType<Provider["chat"]>;
export type EmbeddingModel = ReturnType<Provider["embedding"]>;

/** The models each use gets; all speak the Chat Completions / Embeddings APIs. */
export interface Llm {
  /** Conversations and tool loops. */
  chatModel: ChatModel;
  /** Short structured decisions: classification, extraction (memory facts, entities). */
  classifyModel: ChatModel;
  embeddingModel: EmbeddingModel;
  /** True when no LLM is configured and the built-in development model answers. */
  development: boolean;
}

export type LlmEnv = Pick<
  Env,
  "NODE_ENV" | "LLM_BASE_URL" | "LLM_API_KEY" | "LLM_CHAT_MODEL" | "LLM_CLASSIFY_MODEL" | "LLM_EMBEDDING_MODEL"
>;

/**
 * Models for any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, LM Studio) at LLM_BASE_URL.
 * Without one, outside production, a deterministic development model answers in process through
 * the same provider code; in production that is a configuration error.
 */
export function createLlm(env: LlmEnv, logger: Logger): Llm {
  if (!env.LLM_BASE_URL && env.NODE_ENV === "production") {
    throw new ConfigError("invalid configuration: LLM_BASE_URL must be set when NODE_ENV=production");
  }
  const development = !env.LLM_BASE_URL;
  const provider = development
    ? createOpenAI({
        name: "development",
        baseURL: "http://development.invalid/v1",
        apiKey: "development",
        fetch: developmentFetch,
      })
    : createOpenAI({
        name: "openai-compatible",
        baseURL: env.LLM_BASE_URL,
        // Local servers (Ollama, LM Studio) take any key; the provider insists on one being set.
        apiKey: env.LLM_API_KEY ?? "not-needed",
      });
  if (development) {
    logger.warn(`no LLM_BASE_URL configured: replies come from the built-in ${DEVELOPMENT_LABEL}`);
  }
  return {
    chatModel: provider.chat(env.LLM_CHAT_MODEL),
    classifyModel: provider.chat(env.LLM_CLASSIFY_MODEL),
    embeddingModel: provider.embedding(env.LLM_EMBEDDING_MODEL),
    development,
  };
}
