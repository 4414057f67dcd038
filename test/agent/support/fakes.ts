// In-process stand-ins for the agent service's outside world, for tests that exercise the
// service without a device gateway: an ai/test mock model driven by `brain.ts`, and a DeviceRpc
// answering from `device-files.ts` (with switches to take the device offline or slow it down).
import { MockLanguageModelV4 } from "ai/test";
import type { AgentModels } from "../../../src/agent/context";
import { DeviceCallError, type DevicePush, type DeviceRpc } from "../../../src/shared/device-rpc";
import { answer, purposeOf } from "./brain";
import { answerTool, createStore, type DeviceStore, ToolFailure } from "./device-files";

type Prompt = Array<{ role: string; content: string | Array<{ type: string; text?: string }> }>;

const promptText = (prompt: Prompt) =>
  prompt
    .map((message) =>
      typeof message.content === "string" ? message.content : message.content.map((part) => part.text ?? "").join("\n"),
    )
    .join("\n");

export interface MockModelOptions {
  calls?: { count: number };
  delayMs?: number;
  /** Runs each model call, e.g. to hold or watch it; `generate` answers it. */
  around?: <T>(prompt: string, signal: AbortSignal | undefined, generate: () => Promise<T>) => Promise<T>;
}

export function mockModels(options: MockModelOptions = {}): AgentModels {
  const model = new MockLanguageModelV4({
    doGenerate: async (call) => {
      const prompt = promptText(call.prompt as Prompt);
      const generate = () => generateReply(call, prompt, options);
      return options.around ? options.around(prompt, call.abortSignal, generate) : generate();
    },
  });
  return { classify: model, extract: model };
}

async function generateReply(
  call: { abortSignal?: AbortSignal; responseFormat?: unknown },
  prompt: string,
  options: MockModelOptions,
) {
  if (options.calls) options.calls.count++;
  if (options.delayMs) await Bun.sleep(options.delayMs);
  call.abortSignal?.throwIfAborted();
  const format = call.responseFormat as { name?: string } | undefined;
  const text = answer(purposeOf(format?.name), prompt);
  return {
    content: [{ type: "text" as const, text }],
    finishReason: { unified: "stop" as const, raw: "stop" },
    usage: {
      inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 },
      outputTokens: { total: 1, text: 1, reasoning: 0 },
    },
    warnings: [],
  };
}

export interface MemoryDevice {
  rpc: DeviceRpc;
  push: DevicePush;
  store: DeviceStore;
  /** Every agent_event frame pushed to the user. */
  frames: Array<Record<string, unknown>>;
  online: boolean;
  /** Delay before each tool call answers, honouring cancellation. */
  delayMs: number;
  /** Called before each tool call; may throw to simulate a failure. */
  beforeCall?: (name: string, args: Record<string, unknown>) => void;
}

/** The one device a memory device says is connected. */
export const MEMORY_DEVICE_ID = "memory-device";

export function memoryDevice(files: Record<string, string> = {}): MemoryDevice {
  const device: MemoryDevice = {
    store: createStore(files),
    frames: [],
    online: true,
    delayMs: 0,
    rpc: {
      async call({ name, args, signal }) {
        if (!device.online) throw new DeviceCallError("device_offline", "the device is offline");
        if (device.delayMs > 0) await Bun.sleep(device.delayMs);
        signal?.throwIfAborted();
        if (!device.online) throw new DeviceCallError("device_disconnected", "the device disconnected");
        device.beforeCall?.(name, args as Record<string, unknown>);
        try {
          return answerTool(device.store, name, args as Record<string, unknown>);
        } catch (error) {
          if (error instanceof ToolFailure) throw new DeviceCallError("tool_error", error.message, error.code);
          throw error;
        }
      },
      isOnline: async () => device.online,
      devices: async () =>
        device.online
          ? [{ deviceId: MEMORY_DEVICE_ID, connectionId: "memory", instanceId: "memory", tools: [], connectedAt: 0 }]
          : [],
    },
    push: {
      async push(_userId, frame) {
        if (!device.online) return 0;
        device.frames.push(frame);
        return 1;
      },
    },
  };
  return device;
}
