// The fetch that connects only to the address it checked (src/shared/pinned-fetch.ts), against real
// HTTPS servers on loopback with a certificate made here for a name that no resolver knows: a
// request that reaches them went to the pinned address, not wherever DNS would have sent it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HostResolver } from "../../src/shared/network-address";
import { HostRefused, pinnedFetch, publicAddressPin } from "../../src/shared/pinned-fetch";

const NAME = "pinned.adiuva.test";
let dir: string;
let cert: string;
let key: string;
const servers: Array<ReturnType<typeof Bun.serve>> = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pinned-fetch-"));
  const made = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${NAME}`,
      "-addext",
      `subjectAltName=DNS:${NAME}`,
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ],
    { stderr: "pipe" },
  );
  if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
  cert = readFileSync(join(dir, "cert.pem"), "utf8");
  key = readFileSync(join(dir, "key.pem"), "utf8");
});
afterAll(() => {
  for (const server of servers) server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

/** An HTTPS server answering with the Host header it got; `hits` counts requests. */
function serve(hostname: string, respond?: (request: Request) => Response) {
  const hits: string[] = [];
  const server = Bun.serve({
    hostname,
    port: 0,
    tls: { cert, key },
    fetch(request) {
      hits.push(new URL(request.url).pathname);
      return respond?.(request) ?? Response.json({ host: request.headers.get("host") });
    },
  });
  servers.push(server);
  return { port: server.port, hits };
}

function hasIpv6Loopback(): boolean {
  try {
    Bun.serve({ hostname: "::1", port: 0, fetch: () => new Response() }).stop(true);
    return true;
  } catch {
    return false;
  }
}

const pinTo = (address: string) => {
  const asked: string[] = [];
  const pin = async (hostname: string) => {
    asked.push(hostname);
    return address;
  };
  return Object.assign(pin, { asked });
};

describe("pinnedFetch", () => {
  test("the request goes to the pinned address, the name in the Host header and the certificate checked against it", async () => {
    const server = serve("127.0.0.1");
    const pin = pinTo("127.0.0.1");
    const response = await pinnedFetch({ pin, ca: cert })(`https://${NAME}:${server.port}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ host: `${NAME}:${server.port}` });
    expect(pin.asked).toEqual([NAME]);
    expect(server.hits).toEqual(["/mcp"]);
  });

  test("a certificate that is not the name's is refused", async () => {
    const server = serve("127.0.0.1");
    const fetching = pinnedFetch({ pin: pinTo("127.0.0.1"), ca: cert })(`https://other.adiuva.test:${server.port}/`);
    expect(await fetching.then(String, (error: Error) => error.message)).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
    expect(server.hits).toEqual([]);
  });

  test("a redirect is handed back, not followed: the pin would not cover its hop", async () => {
    const elsewhere = serve("127.0.0.1");
    const server = serve(
      "127.0.0.1",
      () => new Response(null, { status: 302, headers: { location: `https://127.0.0.1:${elsewhere.port}/inside` } }),
    );
    const response = await pinnedFetch({ pin: pinTo("127.0.0.1"), ca: cert })(`https://${NAME}:${server.port}/mcp`);
    expect(response.status).toBe(302);
    expect(elsewhere.hits).toEqual([]);
  });

  test("a refused host: nothing is sent", async () => {
    const server = serve("127.0.0.1");
    const refuse = async () => {
      throw new HostRefused(`${NAME} resolves to a private or loopback address (127.0.0.1)`);
    };
    const fetching = pinnedFetch({ pin: refuse, ca: cert })(`https://${NAME}:${server.port}/mcp`);
    expect(await fetching.then(String, (error: Error) => error)).toBeInstanceOf(HostRefused);
    expect(server.hits).toEqual([]);
  });

  test.skipIf(!hasIpv6Loopback())(
    "an IPv6 address is pinned in brackets (skipped without an IPv6 loopback)",
    async () => {
      const server = serve("::1");
      const response = await pinnedFetch({ pin: pinTo("::1"), ca: cert })(`https://${NAME}:${server.port}/v6`);
      expect(await response.json()).toEqual({ host: `${NAME}:${server.port}` });
      expect(server.hits).toEqual(["/v6"]);
    },
  );
});

describe("publicAddressPin", () => {
  /** A resolver that answers a public address first, then (the name rebound) a loopback one. */
  function rebinding(): HostResolver & { asked: string[] } {
    const asked: string[] = [];
    const resolve: HostResolver = async (hostname) => {
      asked.push(hostname);
      return asked.length === 1 ? ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] : ["127.0.0.1"];
    };
    return Object.assign(resolve, { asked });
  }

  test("a name is resolved once per pin: pointed inside the network after the check, it still leads to the checked address", async () => {
    const resolve = rebinding();
    const pin = publicAddressPin(resolve, 1000);
    expect(await pin("rebind.example.com")).toBe("93.184.216.34");
    expect(await pin("rebind.example.com")).toBe("93.184.216.34");
    expect(resolve.asked).toEqual(["rebind.example.com"]);
    // The next turn's pin resolves again, and refuses what the name leads to now.
    const next = publicAddressPin(resolve, 1000);
    const refused = await next("rebind.example.com").then(String, (error: Error) => error);
    expect(refused).toBeInstanceOf(HostRefused);
    expect((refused as Error).message).toBe("rebind.example.com resolves to a private or loopback address (127.0.0.1)");
  });

  test("literals are their own address, private ones refused without resolving; unresolved names refused", async () => {
    const resolve = rebinding();
    const pin = publicAddressPin(resolve, 1000);
    expect(await pin("93.184.216.34")).toBe("93.184.216.34");
    expect(await pin("10.0.0.8").then(String, (error: Error) => error.message)).toBe("a private or loopback address");
    expect(await pin("localhost").then(String, (error: Error) => error.message)).toBe("a private or loopback address");
    expect(resolve.asked).toEqual([]);
    const nowhere = publicAddressPin(async () => [], 1000);
    expect(await nowhere("gone.example.com").then(String, (error: Error) => error.message)).toBe(
      "gone.example.com did not resolve (no address)",
    );
  });
});
