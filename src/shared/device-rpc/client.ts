import type { DevicePush, DeviceRpc } from "../device-rpc";
import type { Platform } from "../platform";
import { callerId, createRpcNode } from "./node";
import { createStreamPublisher } from "./push";

export interface DeviceRpcClient extends DeviceRpc, DevicePush {
  /** Subscribes this instance's inbox (once); call before the first `call`. */
  start(): Promise<void>;
  /** Fails pending calls with `rpc_unavailable` and unsubscribes. */
  stop(): Promise<void>;
}

/**
 * The device RPC for a service that holds no sockets (the agent service, scripts): calls and pushes
 * go through Redis to whichever chat instance holds the device. In embedded mode the chat gateway of
 * the same process answers through the in-process bus and presence.
 */
export function createDeviceRpcClient(platform: Platform): DeviceRpcClient {
  const id = callerId(platform);
  const node = createRpcNode(platform, { callerId: id });
  // Not the instance id: a gateway of the same process skips its own publishes.
  const publisher = createStreamPublisher(platform, id);
  return {
    call: node.call,
    isOnline: node.isOnline,
    devices: node.devices,
    push: publisher.push,
    start: node.start,
    stop: node.stop,
  };
}
