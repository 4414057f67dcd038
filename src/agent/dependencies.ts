import { DeviceCallError, type DevicePush, type DeviceRpc } from "../shared/device-rpc";
import { createLlm } from "../shared/llm";
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

/** Any OpenAI-compatible endpoint at LLM_BASE_URL, or the built-in development model without one. */
function modelsFromEnv(platform: Platform): AgentModels {
  const llm = createLlm(platform.env, platform.logger);
  return { classify: llm.classifyModel, extract: llm.chatModel };
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
