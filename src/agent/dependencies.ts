import { createOpenAI } from "@ai-sdk/openai";
import { DeviceCallError, type DevicePush, type DeviceRpc } from "../shared/device-rpc";
import type { Platform } from "../shared/platform";
import type { AgentModels } from "./context";

/** Until a device gateway is wired in, every call reports that the RPC is unavailable. */
const noDeviceRpc: DeviceRpc = {
  call: async () => {
    throw new DeviceCallError("rpc_unavailable", "no device gateway is configured");
  },
  isOnline: async () => false,
  devices: async () => [],
};

const noPush: DevicePush = { push: async () => 0 };

function modelsFromEnv(platform: Platform): AgentModels {
  const { env } = platform;
  const provider = createOpenAI({ baseURL: env.LLM_BASE_URL, apiKey: env.LLM_API_KEY ?? "unused" });
  return { classify: provider.chat(env.LLM_CLASSIFY_MODEL), extract: provider.chat(env.LLM_CHAT_MODEL) };
}

/** Production wiring of the agent service's outside world, for whatever the caller did not pass. */
export async function defaultDependencies(
  platform: Platform,
  given: { rpc?: DeviceRpc; push?: DevicePush; models?: AgentModels },
): Promise<{ rpc: DeviceRpc; push: DevicePush; models: AgentModels }> {
  return {
    rpc: given.rpc ?? noDeviceRpc,
    push: given.push ?? noPush,
    models: given.models ?? modelsFromEnv(platform),
  };
}
