import { lookup } from "node:dns/promises";
import { withTimeout } from "./timeout";

/**
 * Which hosts a server of ours may be pointed at by someone outside it. A plugin's endpoint is
 * chosen by its developer and connected by our chat service (and a local plugin's package is
 * fetched by the user's app), so neither may lead into the network they run in: loopback, private,
 * link-local (the cloud metadata service at 169.254.169.254 included), unique-local, carrier-grade
 * NAT, unspecified, multicast and the other special-purpose ranges, in IPv4 and IPv6 (IPv4 written
 * as IPv6 included), and the names that only mean something inside a network. The plugins service
 * checks when an endpoint is published; the chat service checks again before connecting, since a
 * name can be pointed elsewhere in between.
 */

/** Every address a name resolves to (A and AAAA); rejects when it does not resolve. */
export type HostResolver = (hostname: string) => Promise<string[]>;

/** Longest a resolution may take before the host counts as not resolved (a transient failure). */
export const RESOLVE_TIMEOUT_MS = 5000;

/**
 * The system's resolver, as `fetch` itself resolves a host before connecting (the hosts file, then
 * DNS): every IPv4 and IPv6 answer.
 */
export const systemResolver: HostResolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((answer) => answer.address);

/** IPv4 ranges no one outside may reach through us: [network, prefix length]. */
const PRIVATE_V4: ReadonlyArray<readonly [string, number]> = [
  ["0.0.0.0", 8], // "this network", 0.0.0.0 unspecified
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, the cloud metadata service
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, 255.255.255.255 broadcast
];

/**
 * Public IPv6 is global unicast, 2000::/3, alone: everything else is not, among it unspecified and
 * loopback (::, ::1, the deprecated IPv4-compatible ::/96), local-use NAT64 (64:ff9b:1::/48),
 * discard-only (100::/64), unique-local (fc00::/7), link-local (fe80::/10), site-local
 * (fec0::/10) and multicast (ff00::/8). The forms that carry an IPv4 address are judged by it.
 */
const GLOBAL_UNICAST_V6 = ["2000::", 3] as const;

/** Within global unicast, ranges that are not public. */
const PRIVATE_GLOBAL_V6: ReadonlyArray<readonly [string, number]> = [
  ["2001:2::", 48], // benchmarking
  ["2001:db8::", 32], // documentation
  ["3fff::", 20], // documentation
];

/** IPv6 ranges that carry an IPv4 address: as private as the address they carry (4-to-6 forms of a public one are public). */
const EMBEDDING_V6: ReadonlyArray<readonly [string, number, (value: bigint) => number]> = [
  ["::ffff:0:0", 96, (value) => Number(value & 0xffffffffn)], // IPv4-mapped
  ["::ffff:0:0:0", 96, (value) => Number(value & 0xffffffffn)], // IPv4-translated
  ["64:ff9b::", 96, (value) => Number(value & 0xffffffffn)], // NAT64
  ["2002::", 16, (value) => Number((value >> 80n) & 0xffffffffn)], // 6to4
];

/** Dotted-decimal IPv4 (as URLs and resolvers write it) to its 32-bit value; undefined otherwise. */
export function parseIpv4(text: string): number | undefined {
  const parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!parts) return undefined;
  const bytes = parts.slice(1).map(Number);
  if (bytes.some((byte) => byte > 255)) return undefined;
  return bytes.reduce((value, byte) => value * 256 + byte, 0);
}

/** An IPv6 address in any textual form (compressed, with an IPv4 tail, a zone) to its 128-bit value. */
export function parseIpv6(text: string): bigint | undefined {
  let address = text.toLowerCase().replace(/%.*$/, "");
  if (address.includes(".")) {
    const at = address.lastIndexOf(":");
    const v4 = parseIpv4(address.slice(at + 1));
    if (v4 === undefined || at < 0) return undefined;
    address = `${address.slice(0, at + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string | undefined) => (half ? half.split(":") : []);
  const head = groupsOf(halves[0]);
  const tail = groupsOf(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 1 ? 0 : missing).fill("0"), ...tail];
  if (!groups.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return undefined;
  return groups.reduce((value, group) => (value << 16n) | BigInt(Number.parseInt(group, 16)), 0n);
}

const inV4 = (value: number, [network, prefix]: readonly [string, number]) =>
  prefix === 0 || value >>> (32 - prefix) === (parseIpv4(network) as number) >>> (32 - prefix);

const inV6 = (value: bigint, network: string, prefix: number) =>
  value >> BigInt(128 - prefix) === (parseIpv6(network) as bigint) >> BigInt(128 - prefix);

const isPrivateV4 = (value: number) => PRIVATE_V4.some((range) => inV4(value, range));

function isPrivateV6(value: bigint): boolean {
  const embedding = EMBEDDING_V6.find(([network, prefix]) => inV6(value, network, prefix));
  if (embedding) return isPrivateV4(embedding[2](value));
  if (!inV6(value, ...GLOBAL_UNICAST_V6)) return true;
  return PRIVATE_GLOBAL_V6.some(([network, prefix]) => inV6(value, network, prefix));
}

/** A literal IPv4 or IPv6 address (IPv6 with or without brackets); undefined for a name. */
export function ipFamily(host: string): 4 | 6 | undefined {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  if (parseIpv4(bare) !== undefined) return 4;
  if (bare.includes(":") && parseIpv6(bare) !== undefined) return 6;
  return undefined;
}

/** True for a literal address in a range that is not public; false for public ones and for names. */
export function isPrivateAddress(address: string): boolean {
  const bare = address.replace(/^\[(.*)\]$/, "$1");
  const v4 = parseIpv4(bare);
  if (v4 !== undefined) return isPrivateV4(v4);
  const v6 = bare.includes(":") ? parseIpv6(bare) : undefined;
  return v6 !== undefined && isPrivateV6(v6);
}

/** Names that mean a host inside the network whatever DNS says: `localhost`, `*.localhost`, `*.internal`, `*.local`. */
export function isInternalName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.+$/, "");
  return (
    name === "localhost" ||
    name.endsWith(".localhost") ||
    name === "internal" ||
    name.endsWith(".internal") ||
    name === "local" ||
    name.endsWith(".local")
  );
}

/**
 * A URL's host (its `hostname`: IPv6 in brackets, IPv4 normalised by the URL parser) that is a
 * private literal address or an internal name. Names are not resolved here: see `checkHost`.
 */
export function isPrivateHost(hostname: string): boolean {
  return isInternalName(hostname) || isPrivateAddress(hostname);
}

export type HostVerdict =
  /** `address`: for a name, the first of its addresses (all public), the one to connect to. */
  | { kind: "public"; address?: string }
  /** A private literal, an internal name, or a name with a private answer (`address`). */
  | { kind: "private"; address?: string }
  /** The name does not resolve; `transient`: it may resolve on a retry (a timeout, a server failure). */
  | { kind: "unresolved"; transient: boolean; reason: string };

/** Resolver errors that say the name has no address, as opposed to a resolver that failed. */
const NOT_FOUND = new Set(["ENOTFOUND", "ENODATA", "EAI_NONAME", "EAI_NODATA", "NXDOMAIN", "DNS_ENOTFOUND"]);

/**
 * Where a host leads: a literal is judged as it is; a name must not be internal, and every one of
 * its addresses (A and AAAA) must be public. One private answer is enough to refuse it, since the
 * connection may use any of them.
 */
export async function checkHost(
  hostname: string,
  resolve: HostResolver = systemResolver,
  timeoutMs = RESOLVE_TIMEOUT_MS,
): Promise<HostVerdict> {
  if (isPrivateHost(hostname)) return { kind: "private" };
  if (ipFamily(hostname)) return { kind: "public" };
  let addresses: string[];
  try {
    addresses = await withTimeout(resolve(hostname), timeoutMs, `resolving ${hostname}`);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const notFound = typeof code === "string" && NOT_FOUND.has(code);
    return { kind: "unresolved", transient: !notFound, reason: notFound ? "no address" : (error as Error).message };
  }
  if (addresses.length === 0) return { kind: "unresolved", transient: false, reason: "no address" };
  // An answer that is not an address at all is not one we can vouch for.
  const refused = addresses.find((address) => isPrivateAddress(address) || ipFamily(address) === undefined);
  return refused === undefined ? { kind: "public", address: addresses[0] } : { kind: "private", address: refused };
}
