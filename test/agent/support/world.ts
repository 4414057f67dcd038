// The real world of an agent run for end-to-end tests: a chat instance holding the device's
// WebSocket, a device built with the SDK answering tools from an in-memory store, a fake
// OpenAI-compatible server answering with the deterministic brain, and agent replicas wired the
// production way (device RPC through Redis, models through the OpenAI provider).
import { createAgentService } from "../../../src/agent";
import { DeviceClient, ToolFailure as SdkToolFailure, type ToolHandler } from "../../../src/client";
import type { PlatformOverrides, TestContext } from "../../../src/shared/testing";
import { startFakeOpenAi } from "../../../src/shared/testing/fake-openai";
import { type ChatInstance, startChat } from "../../chat/gateway/helpers";
import { AGENT_TOOLS, answerTool, type DeviceStore, ToolFailure } from "./device-files";
import { brainReply } from "./fake-llm";

export interface World {
  chat: ChatInstance;
  llmUrl: string;
  agentEnv: Record<string, string>;
  startAgent(
    env?: Record<string, string | undefined>,
    overrides?: Parameters<typeof createAgentService>[1],
  ): ReturnType<TestContext["start"]>;
}

/** `env` is the agent replicas'; `chat` overrides the chat instance's platform (another Redis URL...). */
export async function createWorld(
  ctx: TestContext,
  env: Record<string, string> = {},
  chat: PlatformOverrides = {},
): Promise<World> {
  const llm = startFakeOpenAi().onChat(brainReply);
  ctx.defer(() => llm.close());
  const chatInstance = await startChat(ctx, chat);
  const agentEnv = {
    LLM_BASE_URL: llm.url,
    AGENT_JOB_LOCK_MS: "1000",
    AGENT_STALLED_INTERVAL_MS: "500",
    AGENT_DEVICE_CALL_MS: "5000",
    ...env,
  };
  return {
    chat: chatInstance,
    llmUrl: llm.url,
    agentEnv,
    startAgent: (more = {}, overrides = {}) =>
      ctx.start([(platform) => createAgentService(platform, overrides)], {
        service: "agent",
        env: { ...agentEnv, ...more },
      }),
  };
}

export interface TestDevice {
  client: DeviceClient;
  events: Array<Record<string, unknown>>;
  /** Delay of every tool answer, honouring the server's cancellation. */
  delayMs: number;
}

/** Connects a device of the user (`device-<user id>` unless named) with the agent tools over the store. */
export async function connectStoreDevice(
  ctx: TestContext,
  world: World,
  userId: string,
  store: DeviceStore,
  deviceId = `device-${userId}`,
) {
  const device: TestDevice = { client: undefined as unknown as DeviceClient, events: [], delayMs: 0 };
  const tools: Record<string, ToolHandler> = {};
  for (const name of AGENT_TOOLS) {
    tools[name] = async (args, context) => {
      if (device.delayMs > 0) await Bun.sleep(device.delayMs);
      context.signal.throwIfAborted();
      try {
        return answerTool(store, name, args as Record<string, unknown>);
      } catch (error) {
        if (error instanceof ToolFailure) throw new SdkToolFailure(error.code, error.message);
        throw error;
      }
    };
  }
  device.client = new DeviceClient({
    url: world.chat.wsUrl,
    deviceId,
    token: () => ctx.token(userId, "power"),
    tools,
    backoff: { initialMs: 50, maxMs: 400 },
  });
  device.client.on("agent_event", (frame) => device.events.push(frame as Record<string, unknown>));
  ctx.defer(() => device.client.close());
  await device.client.connect();
  return device;
}
