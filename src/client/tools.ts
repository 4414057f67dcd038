import type { DeviceToolArgs, DeviceToolName, DeviceToolResult } from "../shared/device-tools";
import type { ToolContext, ToolHandler } from "./device-client";

export type { DeviceToolArgs, DeviceToolName, DeviceToolResult } from "../shared/device-tools";

/** A handler of one contract tool: the arguments the services send, the result they read. */
export type DeviceToolHandler<N extends DeviceToolName> = (
  args: DeviceToolArgs<N>,
  context: ToolContext,
) => DeviceToolResult<N> | Promise<DeviceToolResult<N>>;

/** Handlers for the tools of the contract (docs/device-tools.md); a device offers the ones it has. */
export type DeviceToolHandlers = { [N in DeviceToolName]?: DeviceToolHandler<N> };

/**
 * Checks handlers against the device tool contract at compile time and returns them as
 * `DeviceClientOptions.tools`: a handler answering with the wrong shape does not compile.
 *
 * ```ts
 * new DeviceClient({ ..., tools: deviceTools({ task_list: async ({ status }) => ({ tasks: await db.tasks(status) }) }) });
 * ```
 */
export function deviceTools(handlers: DeviceToolHandlers): Record<string, ToolHandler> {
  return handlers as Record<string, ToolHandler>;
}
