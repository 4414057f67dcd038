import { Elysia } from "elysia";
import { responses } from "../shared/contract";
import { type DeviceToolDescription, describeDeviceTools } from "../shared/device-tools";
import { DEVICE_WS_PATH, PROTOCOL_VERSION } from "./gateway";
import { DeviceTools } from "./model";

export const DEVICE_TOOLS_PATH = `${DEVICE_WS_PATH}/tools.json`;

export interface DeviceToolsDocument {
  protocol: number;
  tools: DeviceToolDescription[];
}

/**
 * The device tool contract as JSON Schema, next to the socket whose `tool_call` frames it
 * describes. Public: it is the protocol, not anyone's data.
 */
export function deviceToolsRoute() {
  const document: DeviceToolsDocument = { protocol: PROTOCOL_VERSION, tools: describeDeviceTools() };
  return new Elysia({ name: "chat-device-tools" }).get(
    DEVICE_TOOLS_PATH,
    ({ set }) => {
      set.headers["cache-control"] = "public, max-age=300";
      return document;
    },
    {
      response: responses({ 200: DeviceTools }),
      detail: { summary: "The tools a device may be asked to run, as JSON Schema", tags: ["device"] },
    },
  );
}
