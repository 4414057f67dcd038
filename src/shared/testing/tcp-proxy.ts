import type { Socket, TCPSocketListener } from "bun";

interface Pair {
  client: Socket<ProxyData>;
  upstream?: Socket<ProxyData>;
  pending: Uint8Array[];
}
interface ProxyData {
  pair?: Pair;
}

/**
 * A TCP proxy in front of PostgreSQL or Redis, so a test can make the server "go down" for one
 * service (cut every connection, refuse new ones) and "come back", without touching the real
 * server other tests share.
 */
export class TcpProxy {
  private listener?: TCPSocketListener<ProxyData>;
  private readonly pairs = new Set<Pair>();
  private down = false;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Starts listening on a free port and returns it. */
  start(): number {
    const proxy = this;
    this.listener = Bun.listen<ProxyData>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(client) {
          if (proxy.down) {
            client.end();
            return;
          }
          const pair: Pair = { client, pending: [] };
          client.data = { pair };
          proxy.pairs.add(pair);
          Bun.connect<ProxyData>({
            hostname: proxy.targetHost,
            port: proxy.targetPort,
            data: { pair },
            socket: {
              open(upstream) {
                pair.upstream = upstream;
                for (const chunk of pair.pending.splice(0)) upstream.write(chunk);
              },
              data(_upstream, chunk) {
                pair.client.write(chunk);
              },
              close() {
                proxy.drop(pair);
              },
              error() {
                proxy.drop(pair);
              },
            },
          }).catch(() => proxy.drop(pair));
        },
        data(client, chunk) {
          const pair = client.data?.pair;
          if (!pair) return;
          if (pair.upstream) pair.upstream.write(chunk);
          else pair.pending.push(new Uint8Array(chunk));
        },
        close(client) {
          const pair = client.data?.pair;
          if (pair) proxy.drop(pair);
        },
        error(client) {
          const pair = client.data?.pair;
          if (pair) proxy.drop(pair);
        },
      },
    });
    return this.listener.port;
  }

  get port(): number {
    if (!this.listener) throw new Error("proxy not started");
    return this.listener.port;
  }

  /** Cuts every open connection and refuses new ones until `resume`. */
  cut(): void {
    this.down = true;
    for (const pair of [...this.pairs]) this.drop(pair);
  }

  resume(): void {
    this.down = false;
  }

  stop(): void {
    this.cut();
    this.listener?.stop(true);
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.end();
    pair.upstream?.end();
  }
}

/** Replaces host and port of a URL (postgres:// or redis://) with the proxy's. */
export function viaProxy(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = "127.0.0.1";
  parsed.port = String(port);
  return parsed.toString();
}
