import type { Server } from "bun";

/**
 * The client address: the socket's, or with TRUSTED_PROXY_HOPS = n the n-th address from the right
 * of X-Forwarded-For (the one our own proxies appended), never a client-chosen leftmost entry.
 */
export function clientIp(request: Request, server: Server<unknown> | null, hops: number): string {
  const socket = server?.requestIP(request)?.address ?? "unknown";
  if (hops === 0) return socket;
  const chain = (request.headers.get("x-forwarded-for") ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  return chain[chain.length - hops] ?? chain[0] ?? socket;
}
