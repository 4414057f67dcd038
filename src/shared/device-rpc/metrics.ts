import type { Metrics } from "../metrics";

export type CallPath = "local" | "remote" | "none";

/**
 * Device RPC metrics of one instance; the names are shared by the gateway and every caller.
 * Updated on every call and relay message, so they are the registry's cheap kind.
 */
export function rpcMetrics(metrics: Metrics) {
  return {
    calls: metrics.hotCounter("device_rpc_calls_total", "Device tool calls started here, by outcome", [
      "outcome",
      "path",
    ]),
    latency: metrics.hotHistogram(
      "device_rpc_call_duration_seconds",
      "Device tool call time from call to settlement",
      ["path"],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    ),
    relayLag: metrics.hotHistogram(
      "device_rpc_relay_lag_seconds",
      "Time from publish to handling of Redis relay messages (inbox and device streams)",
      ["kind"],
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    ),
    resultRetries: metrics.hotCounter(
      "device_rpc_result_retries_total",
      "Results published again because the caller's inbox was unreachable: delivered in the end, or dropped at the call's deadline",
      ["outcome"],
    ),
    late: metrics.hotCounter(
      "device_rpc_late_results_total",
      "Tool results or progress for calls already settled or unknown (ignored)",
      ["where"],
    ),
  };
}
export type RpcMetrics = ReturnType<typeof rpcMetrics>;
