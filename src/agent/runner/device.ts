import type { DeviceRpc } from "../../shared/device-rpc";

/**
 * The device RPC of one run: every call and every presence check names the run's device, so a
 * second device of the same user (with other files) never answers for it.
 */
export function boundRpc(rpc: DeviceRpc, deviceId: string | null): DeviceRpc {
  if (deviceId === null) return rpc;
  return {
    call: (options) => rpc.call({ ...options, deviceId }),
    isOnline: (userId) => rpc.isOnline(userId, deviceId),
    devices: async (userId) => (await rpc.devices(userId)).filter((device) => device.deviceId === deviceId),
  };
}
