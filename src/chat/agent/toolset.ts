import { type FlexibleSchema, NoSuchToolError, type ToolCallRepairFunction, type ToolSet, tool } from "ai";
import { DeviceCallError, type DeviceInfo, type DeviceRpc } from "../../shared/device-rpc";
import type { Logger } from "../../shared/logger";
import { withTimeout } from "../../shared/timeout";
import { DEVICE_TOOL_NAMES, DEVICE_TOOLS, takesIdempotencyKey } from "./device-tools";

export interface DeviceToolsetOptions {
  rpc: DeviceRpc;
  userId: string;
  /** The device the chat came from, when it came over the WebSocket. */
  deviceId?: string;
  deadlineMs: number;
  logger: Logger;
  onCall?: (name: string, outcome: "ok" | "error") => void;
}

/** Longest a turn waits to learn the user's devices before it answers without device tools. */
const DEVICE_LOOKUP_TIMEOUT_MS = 1000;

/**
 * Chooses the device tools run on: the device that asked, else the user's most recent one. A
 * presence lookup that fails leaves the turn without tools rather than failing it.
 */
export async function targetDevice(options: DeviceToolsetOptions): Promise<DeviceInfo | undefined> {
  try {
    // Presence lives in Redis; while Redis is away the reply goes on without tools rather than wait.
    const devices = await withTimeout(options.rpc.devices(options.userId), DEVICE_LOOKUP_TIMEOUT_MS, "device lookup");
    return devices.find((device) => device.deviceId === options.deviceId) ?? devices[0];
  } catch (error) {
    options.logger.warn({ err: error }, "device lookup failed; replying without device tools");
    return undefined;
  }
}

/** What the model reads when a device call fails: the reason and the device's own code. */
export function describeDeviceError(error: unknown): string {
  if (error instanceof DeviceCallError) {
    const code = error.toolCode ? `${error.reason} (${error.toolCode})` : error.reason;
    return `${code}: ${error.message}`;
  }
  return "device_error: the device could not run the tool";
}

/** The device tools the target device advertised, each executing on it through the device RPC. */
export function deviceToolset(options: DeviceToolsetOptions, device: DeviceInfo | undefined): ToolSet {
  const tools: ToolSet = {};
  if (!device) return tools;
  const advertised = new Set(device.tools);
  for (const name of DEVICE_TOOL_NAMES) {
    if (!advertised.has(name)) continue;
    const spec = DEVICE_TOOLS[name];
    tools[name] = tool<Record<string, unknown>, unknown, Record<string, unknown>>({
      description: spec.description,
      inputSchema: spec.input as unknown as FlexibleSchema<Record<string, unknown>>,
      execute: async (input, { abortSignal, toolCallId }) => {
        const args =
          takesIdempotencyKey(name) && input.idempotency_key === undefined
            ? { ...input, idempotency_key: toolCallId }
            : input;
        try {
          const result = await options.rpc.call({
            userId: options.userId,
            deviceId: device.deviceId,
            name,
            args,
            deadlineMs: options.deadlineMs,
            signal: abortSignal,
            origin: "chat",
          });
          options.onCall?.(name, "ok");
          return result;
        } catch (error) {
          options.onCall?.(name, "error");
          // Thrown errors become tool-error parts: the model sees the text and the loop goes on.
          throw new Error(describeDeviceError(error));
        }
      },
    });
  }
  return tools;
}

/**
 * What the model is told when it calls a tool this turn does not offer (an uninstalled plugin's, a
 * tool its manifest does not declare, a made-up name): a refusal, as a tool error, and nothing is
 * run. Without this the AI SDK answers the same way but in its own words, listing every tool.
 * Arguments that fail a tool's schema keep the SDK's own report (no repair is attempted).
 */
export function refuseUnofferedTools(logger: Logger, userId: string): ToolCallRepairFunction<ToolSet> {
  return async ({ toolCall, error }) => {
    if (NoSuchToolError.isInstance(error)) {
      logger.warn(
        { user_id: userId, tool: toolCall.toolName.slice(0, 128) },
        "the model called a tool it was not offered",
      );
      error.message = `tool_refused: ${toolCall.toolName.slice(0, 128)} is not a tool offered in this conversation; it was not run`;
    }
    return null;
  };
}
