import { checkHost, type HostResolver, ipFamily } from "./network-address";

/** Resolves and judges a host: the address to connect to, or a rejection saying why not. */
export type HostPin = (hostname: string) => Promise<string>;

/** Why a host was refused, in words fit for a log line (`endpoint refused: …`). */
export class HostRefused extends Error {}

/**
 * A pin that accepts only public addresses (`checkHost`): a literal is its own address, a name
 * resolves to its first address once every address it has was found public. Each host is resolved
 * once per pin, so every request made through one pin goes to the same checked address.
 */
export function publicAddressPin(resolve: HostResolver, timeoutMs: number): HostPin {
  const pinned = new Map<string, Promise<string>>();
  return (hostname) => {
    let address = pinned.get(hostname);
    if (!address) {
      address = pickPublicAddress(hostname, resolve, timeoutMs);
      pinned.set(hostname, address);
    }
    return address;
  };
}

async function pickPublicAddress(hostname: string, resolve: HostResolver, timeoutMs: number): Promise<string> {
  const verdict = await checkHost(hostname, resolve, timeoutMs);
  if (verdict.kind === "private") {
    throw new HostRefused(
      verdict.address
        ? `${hostname} resolves to a private or loopback address (${verdict.address})`
        : "a private or loopback address",
    );
  }
  if (verdict.kind === "unresolved") throw new HostRefused(`${hostname} did not resolve (${verdict.reason})`);
  return verdict.address ?? hostname;
}

export interface PinnedFetchOptions {
  pin: HostPin;
  /** More certificate authorities to trust, PEM (a deployment's private CA; the tests' own). */
  ca?: string;
}

/**
 * `fetch` for URLs that someone outside chose (a plugin's endpoint), connecting only to the address
 * its pin checked. Checking a name and then letting `fetch` resolve it again leaves a window in
 * which the name can be pointed inside the network (DNS rebinding): here the request goes to the
 * checked address itself, with the name kept where it belongs — the Host header, and the TLS
 * server name that the certificate is verified against. Redirects are never followed (a hop would
 * escape the pin); the caller sees them.
 */
export function pinnedFetch({ pin, ca }: PinnedFetchOptions) {
  return async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const target = new URL(String(url));
    const address = await pin(target.hostname);
    if (ipFamily(target.hostname) !== undefined) return fetch(target, { ...init, redirect: "manual", tls: { ca } });
    const headers = new Headers(init?.headers);
    headers.set("host", target.host);
    const servername = target.hostname;
    target.hostname = ipFamily(address) === 6 ? `[${address}]` : address;
    return fetch(target, { ...init, headers, redirect: "manual", tls: { ca, serverName: servername } });
  };
}
