import type { z } from "zod";
import { takesIdempotencyKey as contractTakesKey, DEVICE_TOOL_CONTRACT } from "../../shared/device-tools";

type Contract = typeof DEVICE_TOOL_CONTRACT;
type ChatToolName = {
  [N in keyof Contract]: "chat" extends Contract[N]["callers"][number] ? N : never;
}[keyof Contract];
type ChatTools = { [N in ChatToolName]: { description: string; input: Contract[N]["args"] } };

/**
 * The device tools the chat agent may use (their data lives on the user's device): those of the
 * device tool contract (`src/shared/device-tools.ts`) that name the chat as a caller.
 */
export const DEVICE_TOOLS = Object.fromEntries(
  Object.entries(DEVICE_TOOL_CONTRACT)
    .filter(([, spec]) => (spec.callers as readonly string[]).includes("chat"))
    .map(([name, spec]) => [name, { description: spec.description, input: spec.args }]),
) as ChatTools satisfies Record<string, { description: string; input: z.ZodObject }>;

export type DeviceToolName = keyof typeof DEVICE_TOOLS;
export const DEVICE_TOOL_NAMES = Object.keys(DEVICE_TOOLS) as DeviceToolName[];

/** Tools that create something take an idempotency key; the tool call id is a natural one. */
export const takesIdempotencyKey = (name: DeviceToolName): boolean => contractTakesKey(name);
