import { DeviceCallError, type DeviceRpc } from "../shared/device-rpc";

/** Stands in when no device gateway is wired: no devices, so the model is offered no device tools. */
export const noDeviceRpc: DeviceRpc = {
  call: async () => {
    throw new DeviceCallError("rpc_unavailable", "no device gateway is available");
  },
  isOnline: async () => false,
  devices: async () => [],
};
