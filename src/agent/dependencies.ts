import type { DevicePush, DeviceRpc } from "../shared/device-rpc";
import { createDeviceRpcClient } from "../shared/device-rpc/client";
import { createLlm } from "../shared/llm";
import type { Platform } from "../shared/platform";
import type { AgentModels } from "./context";

export interface ResolvedDependencies {
  rpc: DeviceRpc;
  push: DevicePush;
  models: AgentModels;
  /** Starts and stops what the defaults opened (the device RPC client's inbox). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Production wiring for whatever the caller did not pass: the device RPC and push through Redis
 * to whichever chat instance holds the device (in-process bus in embedded mode), and models for
 * LLM_BASE_URL or the built-in development model.
 */
export function defaultDependencies(
  platform: Platform,
  given: { rpc?: DeviceRpc; push?: DevicePush; models?: AgentModels },
): ResolvedDependencies {
  const client = given.rpc && given.push ? undefined : createDeviceRpcClient(platform);
  let models = given.models;
  if (!models) {
    const llm = createLlm(platform.env, platform.logger);
    models = { classify: llm.classifyModel, extract: llm.chatModel };
  }
  return {
    rpc: given.rpc ?? (client as DeviceRpc),
    push: given.push ?? (client as DevicePush),
    models,
    start: async () => client?.start(),
    stop: async () => client?.stop(),
  };
}
