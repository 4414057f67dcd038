// The one classifier of hosts a plugin may point our servers at, shared by the plugins service
// (when an endpoint is published) and the chat service (before it connects): every range it must
// refuse, the edges of each, the ways an address can be written, and names resolved through an
// injected resolver and through the system's.
import { describe, expect, test } from "bun:test";
import {
  checkHost,
  type HostResolver,
  ipFamily,
  isInternalName,
  isPrivateAddress,
  isPrivateHost,
  parseIpv6,
  systemResolver,
} from "../../src/shared/network-address";

/** The hostname a URL parser makes of what a manifest may say (IPv4 normalised, IPv6 in brackets). */
const hostOf = (written: string) => new URL(`https://${written}/mcp`).hostname;

/** Each refused range: the first and last address in it, as written. */
const PRIVATE_V4: Array<[string, string, string]> = [
  ["this network, unspecified", "0.0.0.0", "0.255.255.255"],
  ["private 10/8", "10.0.0.0", "10.255.255.255"],
  ["carrier-grade NAT", "100.64.0.0", "100.127.255.255"],
  ["loopback", "127.0.0.1", "127.255.255.255"],
  ["link-local, the metadata service", "169.254.169.254", "169.254.255.255"],
  ["private 172.16/12", "172.16.0.0", "172.31.255.255"],
  ["IETF protocol assignments", "192.0.0.0", "192.0.0.255"],
  ["documentation", "192.0.2.1", "203.0.113.255"],
  ["private 192.168/16", "192.168.0.0", "192.168.255.255"],
  ["benchmarking", "198.18.0.0", "198.19.255.255"],
  ["multicast", "224.0.0.1", "239.255.255.255"],
  ["reserved and broadcast", "240.0.0.0", "255.255.255.255"],
];

/** Public addresses just outside those ranges. */
const PUBLIC_V4 = [
  "1.1.1.1",
  "8.8.8.8",
  "9.255.255.255",
  "11.0.0.0",
  "100.63.255.255",
  "100.128.0.0",
  "126.255.255.255",
  "128.0.0.0",
  "169.253.255.255",
  "169.255.0.0",
  "172.15.255.255",
  "172.32.0.0",
  "192.167.255.255",
  "192.169.0.0",
  "198.17.255.255",
  "198.20.0.0",
  "223.255.255.255",
];

const PRIVATE_V6: Array<[string, string]> = [
  ["unspecified", "::"],
  ["loopback", "::1"],
  ["loopback written in full", "0:0:0:0:0:0:0:1"],
  ["IPv4-compatible (deprecated)", "::8.8.8.8"],
  ["IPv4-mapped loopback", "::ffff:127.0.0.1"],
  ["IPv4-mapped loopback in hex", "::ffff:7f00:1"],
  ["IPv4-mapped metadata service", "::ffff:169.254.169.254"],
  ["IPv4-mapped private", "::ffff:10.1.2.3"],
  ["IPv4-translated private", "::ffff:0:192.168.1.1"],
  ["NAT64 of a private address", "64:ff9b::10.0.0.1"],
  ["local-use NAT64", "64:ff9b:1::1"],
  ["6to4 of a private address", "2002:c0a8:0101::1"],
  ["discard-only", "100::1"],
  ["documentation", "2001:db8::1"],
  ["unique-local fc00::/7", "fc00::1"],
  ["unique-local fd", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ["link-local", "fe80::1"],
  ["link-local, last of the range", "febf:ffff::1"],
  ["link-local with a zone", "fe80::1%eth0"],
  ["site-local (deprecated)", "fec0::1"],
  ["multicast", "ff02::1"],
  ["multicast, all nodes", "ff0e::1"],
  ["benchmarking", "2001:2::1"],
  ["documentation 3fff::/20", "3fff:fff::1"],
  ["outside global unicast, unassigned", "4000::1"],
];

const PUBLIC_V6 = [
  "2606:4700:4700::1111",
  "2001:4860:4860::8888",
  "::ffff:8.8.8.8",
  "64:ff9b::8.8.8.8",
  "2002:0808:0808::1",
  "2000::",
  "3ffe:ffff::1",
  "2001:db9::1",
];

describe("literal addresses", () => {
  for (const [what, first, last] of PRIVATE_V4) {
    test(`IPv4 ${what} (${first} … ${last}) is refused, written plainly or as IPv4-mapped IPv6`, () => {
      for (const address of [first, last]) {
        expect(isPrivateAddress(address)).toBe(true);
        expect(isPrivateHost(hostOf(address))).toBe(true);
        expect(isPrivateHost(hostOf(`[::ffff:${address}]`))).toBe(true);
      }
    });
  }

  test("public IPv4, right next to the refused ranges, is allowed", () => {
    for (const address of PUBLIC_V4) {
      expect({ address, private: isPrivateAddress(address) }).toEqual({ address, private: false });
      expect(isPrivateHost(hostOf(`[::ffff:${address}]`))).toBe(false);
    }
  });

  for (const [what, address] of PRIVATE_V6) {
    test(`IPv6 ${what} (${address}) is refused`, () => {
      expect(isPrivateAddress(address)).toBe(true);
      if (!address.includes("%")) expect(isPrivateHost(hostOf(`[${address}]`))).toBe(true);
    });
  }

  test("public IPv6, the IPv4 ones it carries included, is allowed", () => {
    for (const address of PUBLIC_V6) {
      expect({ address, private: isPrivateAddress(address) }).toEqual({ address, private: false });
      expect(isPrivateHost(hostOf(`[${address}]`))).toBe(false);
    }
  });

  test("the other ways a URL may write loopback are normalised by the URL parser and refused", () => {
    for (const written of ["0x7f.1", "2130706433", "127.1", "0177.0.0.1", "[0:0:0:0:0:ffff:7f00:1]", "0"]) {
      expect({ written, private: isPrivateHost(hostOf(written)) }).toEqual({ written, private: true });
    }
  });

  test("IPv6 parsing: compressed, full, with an IPv4 tail; malformed text is no address", () => {
    expect(parseIpv6("::1")).toBe(1n);
    expect(parseIpv6("0:0:0:0:0:0:0:1")).toBe(1n);
    expect(parseIpv6("::ffff:1.2.3.4")).toBe(0xffff01020304n);
    expect(parseIpv6("1::")).toBe(1n << 112n);
    for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g", "1:2:3:4:5:6:7", "::1.2.3.256", ":::"]) {
      expect({ bad, parsed: parseIpv6(bad) }).toEqual({ bad, parsed: undefined });
    }
    expect(ipFamily("[::1]")).toBe(6);
    expect(ipFamily("10.0.0.1")).toBe(4);
    expect(ipFamily("example.com")).toBeUndefined();
    expect(isPrivateAddress("example.com")).toBe(false);
  });
});

describe("names", () => {
  test("localhost, *.localhost, *.internal and *.local are refused whatever DNS says, in any case and with a final dot", () => {
    for (const name of [
      "localhost",
      "LOCALHOST",
      "localhost.",
      "api.localhost",
      "metadata.google.internal",
      "db.internal.",
      "printer.local",
    ]) {
      expect({ name, internal: isInternalName(name), host: isPrivateHost(hostOf(name)) }).toEqual({
        name,
        internal: true,
        host: true,
      });
    }
    for (const name of ["example.com", "localhost.example.com", "internal.example.com", "local.example"]) {
      expect({ name, internal: isPrivateHost(name) }).toEqual({ name, internal: false });
    }
  });
});

describe("checkHost", () => {
  /** A resolver answering from a table (a name not in it does not resolve), recording what it was asked. */
  function answering(table: Record<string, string[]>): HostResolver & { asked: string[] } {
    const asked: string[] = [];
    const resolve: HostResolver = async (hostname) => {
      asked.push(hostname);
      const answer = table[hostname];
      if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
      return answer;
    };
    return Object.assign(resolve, { asked });
  }

  test("a name is public only when every answer, A and AAAA, is public", async () => {
    const resolve = answering({
      "mcp.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
      "rebound.example.com": ["127.0.0.1"],
      "mixed.example.com": ["93.184.216.34", "10.0.0.7"],
      "v6-inside.example.com": ["93.184.216.34", "fd00::7"],
      "metadata.example.com": ["169.254.169.254"],
      "mapped.example.com": ["::ffff:192.168.0.1"],
      "empty.example.com": [],
    });
    expect(await checkHost("mcp.example.com", resolve)).toEqual({ kind: "public", address: "93.184.216.34" });
    expect(await checkHost("rebound.example.com", resolve)).toEqual({ kind: "private", address: "127.0.0.1" });
    expect(await checkHost("mixed.example.com", resolve)).toEqual({ kind: "private", address: "10.0.0.7" });
    expect(await checkHost("v6-inside.example.com", resolve)).toEqual({ kind: "private", address: "fd00::7" });
    expect(await checkHost("metadata.example.com", resolve)).toEqual({ kind: "private", address: "169.254.169.254" });
    expect(await checkHost("mapped.example.com", resolve)).toEqual({ kind: "private", address: "::ffff:192.168.0.1" });
    expect(await checkHost("empty.example.com", resolve)).toMatchObject({ kind: "unresolved", transient: false });
    expect(await checkHost("nowhere.example.com", resolve)).toMatchObject({ kind: "unresolved", transient: false });
  });

  test("literals and internal names are judged without asking the resolver", async () => {
    const resolve = answering({});
    expect(await checkHost("10.0.0.1", resolve)).toEqual({ kind: "private" });
    expect(await checkHost("[::1]", resolve)).toEqual({ kind: "private" });
    expect(await checkHost("localhost", resolve)).toEqual({ kind: "private" });
    expect(await checkHost("8.8.8.8", resolve)).toEqual({ kind: "public" });
    expect(await checkHost("[2606:4700:4700::1111]", resolve)).toEqual({ kind: "public" });
    expect(resolve.asked).toEqual([]);
  });

  test("a resolver that fails or hangs is a transient failure, not an answer", async () => {
    const failing: HostResolver = async () => {
      throw Object.assign(new Error("queryA ESERVFAIL"), { code: "ESERVFAIL" });
    };
    expect(await checkHost("mcp.example.com", failing)).toMatchObject({ kind: "unresolved", transient: true });
    const hanging: HostResolver = () => new Promise(() => {});
    const started = performance.now();
    expect(await checkHost("mcp.example.com", hanging, 100)).toMatchObject({ kind: "unresolved", transient: true });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test("the system resolver answers both families, and its answer for localhost is refused", async () => {
    const addresses = await systemResolver("localhost");
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.every((address) => isPrivateAddress(address))).toBe(true);
    await expect(systemResolver("no-such-host.invalid")).rejects.toMatchObject({ code: "ENOTFOUND" });
    expect(await checkHost("no-such-host.invalid")).toMatchObject({ kind: "unresolved", transient: false });
  });
});
