import type { Socket, TCPSocketListener } from "bun";

interface Pair {
  client: Socket<Data>;
  upstream?: Socket<Data>;
  pending: Uint8Array[];
}
interface Data {
  pair?: Pair;
}

/**
 * A TCP proxy on one port that outlives the server behind it: `stop` refuses connections on that
 * port (ECONNREFUSED, as a restarting server does) and `listen` takes the same port again in front
 * of another server, so a device keeps one URL across the restart.
 */
export class PortProxy {
  private listener?: TCPSocketListener<Data>;
  private readonly pairs = new Set<Pair>();
  port = 0;

  /** Listens (on the port it had, if any) and forwards to 127.0.0.1:`targetPort`. */
  listen(targetPort: number): number {
    const proxy = this;
    this.listener = Bun.listen<Data>({
      hostname: "127.0.0.1",
      port: this.port,
      socket: {
        open(client) {
          const pair: Pair = { client, pending: [] };
          client.data = { pair };
          proxy.pairs.add(pair);
          Bun.connect<Data>({
            hostname: "127.0.0.1",
            port: targetPort,
            data: { pair },
            socket: {
              open(upstream) {
                pair.upstream = upstream;
                for (const chunk of pair.pending.splice(0)) upstream.write(chunk);
              },
              data: (_upstream, chunk) => void pair.client.write(chunk),
              close: () => proxy.drop(pair),
              error: () => proxy.drop(pair),
            },
          }).catch(() => proxy.drop(pair));
        },
        data(client, chunk) {
          const pair = client.data?.pair;
          if (!pair) return;
          if (pair.upstream) pair.upstream.write(chunk);
          else pair.pending.push(new Uint8Array(chunk));
        },
        close: (client) => client.data?.pair && proxy.drop(client.data.pair),
        error: (client) => client.data?.pair && proxy.drop(client.data.pair),
      },
    });
    this.port = this.listener.port;
    return this.port;
  }

  /** Cuts every connection and closes the port. */
  stop(): void {
    for (const pair of [...this.pairs]) this.drop(pair);
    this.listener?.stop(true);
    this.listener = undefined;
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.end();
    pair.upstream?.end();
  }
}
