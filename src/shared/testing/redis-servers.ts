// A real Redis Cluster (3 masters, 3 replicas) and a real Sentinel group (master, replica, three
// sentinels) from Debian's binaries, each on free ports in a temp dir of its own, for tests that run
// the backend's Redis users on those topologies and through failovers. Every wait is bounded and
// names what did not happen, with the end of the log of the server concerned.
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Redis } from "ioredis";
import { type HostPort, hostPortList } from "../redis";

export type { HostPort };

const HOST = "127.0.0.1";
const SLOTS = 16384;
const POLL_MS = 100;
const START_TIMEOUT_MS = 20_000;
const address = ({ host, port }: HostPort): string => `${host}:${port}`;
const byPort = (a: HostPort, b: HostPort): number => a.port - b.port;

export function redisBinariesAvailable(): { cluster: boolean; sentinel: boolean; reason?: string } {
  const missing = ["redis-server", "redis-cli"].filter((binary) => Bun.which(binary) === null);
  const server = !missing.includes("redis-server");
  return {
    cluster: missing.length === 0,
    // Sentinel needs only the server program (see sentinelCommand); redis-cli creates clusters.
    sentinel: server,
    reason:
      missing.length > 0
        ? `${missing.join(" and ")} not installed (Debian's redis-server and redis-tools packages)`
        : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Every server still running, so a test run that dies before stop() leaves no process behind. */
const running = new Set<RedisProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const server of running) server.killNow();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

function makeTempDir(prefix: string): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function logTail(path: string, lines = 30): string {
  if (!existsSync(path)) return "(no log)";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** A failure that points at the log explaining it. */
class ServerError extends Error {
  constructor(
    message: string,
    readonly log?: string,
  ) {
    super(message);
  }
}

/** One redis-server (or sentinel) spawned by us, killed by its PID; output appended to its own log. */
class RedisProcess implements HostPort {
  readonly host = HOST;
  private child?: Subprocess;

  constructor(
    readonly port: number,
    private readonly argv: string[],
    readonly log: string,
  ) {}

  get name(): string {
    return address(this);
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  launch(): void {
    const fd = openSync(this.log, "a");
    try {
      this.child = Bun.spawn(this.argv, { stdin: "ignore", stdout: fd, stderr: fd });
    } finally {
      closeSync(fd);
    }
    running.add(this);
  }

  killNow(): void {
    if (this.alive) this.child?.kill("SIGKILL");
  }

  async kill(): Promise<void> {
    this.killNow();
    await this.child?.exited;
    running.delete(this);
  }

  /** Waits until it answers PING; "port taken" when it exited because another process had the port. */
  async serving(timeoutMs = START_TIMEOUT_MS): Promise<"serving" | "port taken"> {
    const deadline = Date.now() + timeoutMs;
    let lastError = "";
    while (Date.now() < deadline) {
      if (!this.alive) {
        await this.child?.exited;
        running.delete(this);
        if (/address already in use/i.test(logTail(this.log, 10))) return "port taken";
        throw new ServerError(`${this.name} exited (code ${this.child?.exitCode}) before serving`, this.log);
      }
      try {
        if ((await this.command("PING")) === "PONG") return "serving";
      } catch (error) {
        lastError = (error as Error).message;
      }
      await Bun.sleep(50);
    }
    await this.kill();
    throw new ServerError(`${this.name} did not answer PING within ${timeoutMs} ms (${lastError})`, this.log);
  }

  /** One admin command on a short-lived connection: nothing to clean up when the server is killed. */
  async command(name: string, ...args: (string | number)[]): Promise<unknown> {
    const client = new Redis({
      host: this.host,
      port: this.port,
      lazyConnect: true,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1000,
      commandTimeout: 3000,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      return await client.call(name, args);
    } catch (error) {
      throw new ServerError(`${this.name} ${name} ${args.join(" ")}: ${(error as Error).message}`, this.log);
    } finally {
      client.disconnect();
    }
  }

  async info(section: string): Promise<Record<string, string>> {
    return parseInfo(String(await this.command("INFO", section)));
  }
}

function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return fields;
}

/** A still-unmet condition: what is missing, and the log that may say why. */
type Pending = { missing: string; log?: string };
const pending = (missing: string, server?: RedisProcess): Pending => ({ missing, log: server?.log });

/** Polls `check` until it returns true; past `timeoutMs`, fails naming `goal`, the last gap seen and its log. */
async function waitUntil(goal: string, timeoutMs: number, check: () => Promise<true | Pending>): Promise<void> {
  const started = Date.now();
  let last: Pending = { missing: "not checked yet" };
  while (Date.now() - started <= timeoutMs) {
    try {
      const progress = await check();
      if (progress === true) return;
      last = progress;
    } catch (error) {
      last = { missing: (error as Error).message, log: (error as ServerError).log };
    }
    await Bun.sleep(POLL_MS);
  }
  const log = last.log ? `\n--- last lines of ${last.log}:\n${logTail(last.log)}` : "";
  throw new Error(`${goal}: did not happen within ${timeoutMs} ms (last seen: ${last.missing})${log}`);
}

// Ports. Client ports are drawn below 22768, so each cluster bus port (client port + 10000) stays
// below 32768, where Linux's default ephemeral range starts: an outgoing connection cannot take either
// between the check and the bind, nor while a killed node is down waiting for restart().
const reservedPorts = new Set<number>();

function portFree(port: number): boolean {
  if (reservedPorts.has(port)) return false;
  try {
    Bun.listen({ hostname: HOST, port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

function reservePort(withBusPort: boolean): number {
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 2768);
    if (portFree(port) && (!withBusPort || portFree(port + 10_000))) {
      reservedPorts.add(port);
      if (withBusPort) reservedPorts.add(port + 10_000);
      return port;
    }
  }
  throw new Error("no free port pair (port and port + 10000) between 20000 and 32767");
}

function releasePort(port: number): void {
  reservedPorts.delete(port);
  reservedPorts.delete(port + 10_000);
}

/**
 * Starts a server on a fresh free port, drawing another when something took the port in between
 * (a concurrent test run): `argsFor(port)` builds its command line.
 */
async function startOnFreePort(
  dir: string,
  withBusPort: boolean,
  logName: (port: number) => string,
  argsFor: (port: number) => string[],
): Promise<RedisProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = reservePort(withBusPort);
    const server = new RedisProcess(port, argsFor(port), join(dir, logName(port)));
    server.launch();
    const outcome = await server.serving().catch((error: unknown) => {
      releasePort(port);
      throw error;
    });
    if (outcome === "serving") return server;
    releasePort(port);
    if (attempt === 5) throw new ServerError(`${server.name}: port taken on 5 tries`, server.log);
  }
}

/** Flags every data node gets: nothing on disk, loopback only, in the foreground. */
function dataNodeArgs(dir: string, port: number): string[] {
  return [
    "redis-server",
    "--port",
    String(port),
    "--bind",
    HOST,
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    // Replicas of the same dir would otherwise overwrite each other's received dump.rdb.
    "--dbfilename",
    `dump-${port}.rdb`,
    "--daemonize",
    "no",
    // A full sync (a replica's first, a restarted node's, a demoted master's) starts at once instead
    // of after the default 5 s window Redis leaves for more replicas to join.
    "--repl-diskless-sync-delay",
    "0",
  ];
}

/** Runs `action` once; later calls get the same promise (stop() twice is harmless). */
function once(action: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= action();
    return done;
  };
}

async function stopAll(servers: Iterable<RedisProcess>, dir: string): Promise<void> {
  await Promise.all([...servers].map((server) => server.kill()));
  for (const server of servers) releasePort(server.port);
  removeTempDir(dir);
}

/** Waits until `replica` replicates `master` and holds every write the master had when called. */
async function replicaCaughtUp(master: RedisProcess, replica: RedisProcess, timeoutMs: number): Promise<void> {
  const target = Number((await master.info("replication")).master_repl_offset ?? 0);
  await waitUntil(`${replica.name} in sync with master ${master.name}`, timeoutMs, async () => {
    const info = await replica.info("replication");
    if (info.role !== "slave" || Number(info.master_port) !== master.port) {
      return pending(`role ${info.role} of ${info.master_host ?? "-"}:${info.master_port ?? "-"}`, replica);
    }
    if (info.master_link_status !== "up" || info.master_sync_in_progress !== "0") {
      return pending(`master_link_status:${info.master_link_status}`, replica);
    }
    const offset = Number(info.slave_repl_offset ?? -1);
    return offset >= target ? true : pending(`slave_repl_offset ${offset} < ${target}`, replica);
  });
}

async function answersRole(server: RedisProcess, role: "master" | "slave"): Promise<true | Pending> {
  const reply = (await server.command("ROLE")) as [string, ...unknown[]];
  return reply[0] === role ? true : pending(`${server.name} has ROLE ${reply[0]}`, server);
}

// ---------------------------------------------------------------------------------------------
// Cluster

export interface RedisClusterHandle {
  /** Seed nodes (all 6), as "host:port,host:port" for REDIS_CLUSTER_NODES. */
  nodes: HostPort[];
  env: { REDIS_CLUSTER_NODES: string };
  /** Current masters as reported by CLUSTER NODES (host:port), after any failover. */
  masters(): Promise<HostPort[]>;
  /** SIGKILLs the master serving this key's slot (default: the first master), waits until its replica is promoted and the cluster state is ok again; returns the killed node. */
  killMasterOf(key?: string): Promise<HostPort>;
  /** Restarts a killed node (it rejoins as a replica). */
  restart(node: HostPort): Promise<void>;
  stop(): Promise<void>;
}

interface ClusterNodeEntry {
  id: string;
  address: HostPort;
  flags: string[];
  masterId: string;
  slots: Array<[number, number]>;
}

/** One line of CLUSTER NODES: `id ip:port@bus[,hostname] flags master ping pong epoch link slot…`. */
function parseClusterNodes(text: string): ClusterNodeEntry[] {
  return text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [id = "", endpoint = "", flags = "", masterId = "", , , , , ...slots] = line.trim().split(" ");
      const hostPort = endpoint.split("@")[0] ?? "";
      const colon = hostPort.lastIndexOf(":");
      return {
        id,
        address: { host: hostPort.slice(0, colon), port: Number(hostPort.slice(colon + 1)) },
        flags: flags.split(","),
        masterId,
        slots: slots
          .filter((slot) => !slot.startsWith("["))
          .map((slot) => {
            const [start, end = start] = slot.split("-").map(Number) as [number, number?];
            return [start, end] as [number, number];
          }),
      };
    });
}

const failing = (entry: ClusterNodeEntry): boolean =>
  entry.flags.some((flag) => ["fail", "fail?", "handshake", "noaddr"].includes(flag));
const servingMaster = (entry: ClusterNodeEntry): boolean =>
  entry.flags.includes("master") && !failing(entry) && entry.slots.length > 0;
const covers = (entry: ClusterNodeEntry, slot: number): boolean =>
  entry.slots.some(([start, end]) => slot >= start && slot <= end);

export async function startRedisCluster(options: { nodeTimeoutMs?: number } = {}): Promise<RedisClusterHandle> {
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  // Detection (node timeout), the vote and the rejoin delay all scale with the node timeout.
  const failoverTimeoutMs = Math.max(15_000, nodeTimeoutMs * 15);
  const dir = makeTempDir("adiuva-redis-cluster-");
  const servers: RedisProcess[] = [];
  const argsFor = (port: number) => [
    ...dataNodeArgs(dir, port),
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    join(dir, `nodes-${port}.conf`),
    "--cluster-node-timeout",
    String(nodeTimeoutMs),
    // A replica refuses to stand for election when its data looks older than node-timeout × this
    // factor + the replication ping period (10 s). On a loaded test machine, or for a node killed
    // soon after restart() made it a replica, that age check can leave a slot without a master for
    // good; 0 makes every replica always try, so a killed master is always replaced.
    "--cluster-replica-validity-factor",
    "0",
  ];
  const stop = once(() => stopAll(servers, dir));

  try {
    // allSettled: when one node fails to start, the others are still stopped with it.
    const started = await Promise.allSettled(
      Array.from({ length: 6 }, () => startOnFreePort(dir, true, (port) => `redis-${port}.log`, argsFor)),
    );
    for (const result of started) if (result.status === "fulfilled") servers.push(result.value);
    const failure = started.find((result) => result.status === "rejected");
    if (failure) throw failure.reason;
    await createCluster(dir, servers);
    await waitUntil("cluster of 3 masters and 3 synced replicas, cluster_state:ok everywhere", START_TIMEOUT_MS, () =>
      clusterHealthy(servers, 6),
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const live = () => servers.filter((server) => server.alive);
  const serverAt = (node: HostPort) => servers.find((server) => server.port === node.port);
  /** CLUSTER NODES as the first live node that answers sees it. */
  const clusterView = async (): Promise<{ from: RedisProcess; entries: ClusterNodeEntry[] }> => {
    let lastError: unknown = new Error("no cluster node is running");
    for (const server of live()) {
      try {
        return { from: server, entries: parseClusterNodes(String(await server.command("CLUSTER", "NODES"))) };
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  };
  const masters = async () =>
    (await clusterView()).entries
      .filter(servingMaster)
      .map((entry) => entry.address)
      .sort(byPort);

  const nodes = servers.map(({ host, port }) => ({ host, port })).sort(byPort);
  return {
    nodes,
    env: { REDIS_CLUSTER_NODES: hostPortList(nodes) },
    masters,

    async killMasterOf(key?: string): Promise<HostPort> {
      const { from, entries } = await clusterView();
      const slot = key === undefined ? undefined : Number(await from.command("CLUSTER", "KEYSLOT", key));
      const master = entries
        .filter(servingMaster)
        .sort((a, b) => byPort(a.address, b.address))
        .find((entry) => slot === undefined || covers(entry, slot));
      if (!master) throw new Error(`no live master serves slot ${slot} (${key})`);
      const masterServer = serverAt(master.address);
      const replicaEntry = entries.find((entry) => entry.masterId === master.id && !failing(entry));
      const replicaServer = replicaEntry && serverAt(replicaEntry.address);
      if (!masterServer || !replicaServer?.alive) {
        throw new Error(`master ${address(master.address)} has no live replica to promote`);
      }
      // Whatever the test wrote before the kill is on the replica: a promotion loses nothing.
      await replicaCaughtUp(masterServer, replicaServer, failoverTimeoutMs);
      const watchedSlot = slot ?? master.slots[0]![0];
      await masterServer.kill();
      await waitUntil(
        `replica promoted after killing master ${masterServer.name} (slot ${watchedSlot}), cluster_state:ok on every live node`,
        failoverTimeoutMs,
        async () => {
          for (const server of live()) {
            const owner = parseClusterNodes(String(await server.command("CLUSTER", "NODES"))).find(
              (entry) => servingMaster(entry) && covers(entry, watchedSlot),
            );
            if (!owner || owner.address.port === masterServer.port) {
              return pending(
                `${server.name} sees slot ${watchedSlot} on ${owner ? masterServer.name : "no master"}`,
                replicaServer,
              );
            }
            const state = parseInfo(String(await server.command("CLUSTER", "INFO")));
            if (state.cluster_state !== "ok") {
              return pending(`${server.name} cluster_state:${state.cluster_state}`, server);
            }
          }
          return answersRole(replicaServer, "master");
        },
      );
      return { host: masterServer.host, port: masterServer.port };
    },

    async restart(node: HostPort): Promise<void> {
      const server = serverAt(node);
      if (!server) throw new Error(`${address(node)} is not a node of this cluster`);
      if (server.alive) throw new Error(`${server.name} is running; only a killed node restarts`);
      // Same port and nodes-<port>.conf: it comes back with its node id, learns its slots moved to
      // the promoted replica, and turns into that node's replica.
      server.launch();
      if ((await server.serving()) === "port taken") {
        throw new ServerError(`${server.name} could not restart: its port was taken`, server.log);
      }
      await waitUntil(
        `${server.name} rejoined as a synced replica, cluster_state:ok everywhere`,
        failoverTimeoutMs,
        () => clusterHealthy(servers, live().length),
      );
    },

    stop,
  };
}

/** redis-cli --cluster create: 3 masters with a third of the slots each, one replica per master. */
async function createCluster(dir: string, servers: RedisProcess[]): Promise<void> {
  const log = join(dir, "cluster-create.log");
  const fd = openSync(log, "a");
  let create: Subprocess;
  try {
    create = Bun.spawn(
      ["redis-cli", "--cluster", "create", ...servers.map(address), "--cluster-replicas", "1", "--cluster-yes"],
      { stdin: "ignore", stdout: fd, stderr: fd },
    );
  } finally {
    closeSync(fd);
  }
  const timer = setTimeout(() => create.kill("SIGKILL"), START_TIMEOUT_MS);
  const code = await create.exited;
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`redis-cli --cluster create exited with ${code ?? create.signalCode}\n${logTail(log)}`);
  }
}

/**
 * Every running node says cluster_state:ok with all slots served and sees the same healthy shape:
 * three masters covering every slot, each with a replica, every replica fully synced (so a
 * failover has someone to promote) and no node flagged failing.
 */
async function clusterHealthy(servers: RedisProcess[], expectedLive: number): Promise<true | Pending> {
  const live = servers.filter((server) => server.alive);
  if (live.length !== expectedLive) return pending(`${live.length} of ${expectedLive} nodes running`);
  for (const server of live) {
    const info = parseInfo(String(await server.command("CLUSTER", "INFO")));
    if (info.cluster_state !== "ok" || Number(info.cluster_slots_ok) !== SLOTS) {
      return pending(`${server.name} cluster_state:${info.cluster_state} slots_ok:${info.cluster_slots_ok}`, server);
    }
    const entries = parseClusterNodes(String(await server.command("CLUSTER", "NODES")));
    const liveEntries = entries.filter((entry) => live.some((node) => node.port === entry.address.port));
    const flagged = liveEntries.find(failing);
    if (flagged) return pending(`${server.name} flags ${address(flagged.address)} ${flagged.flags.join(",")}`, server);
    const masters = liveEntries.filter(servingMaster);
    const covered = masters.reduce(
      (sum, master) => sum + master.slots.reduce((count, [start, end]) => count + end - start + 1, 0),
      0,
    );
    if (masters.length !== 3 || covered !== SLOTS) {
      return pending(`${server.name} sees ${masters.length} masters covering ${covered} slots`, server);
    }
    const replicas = liveEntries.filter((entry) => entry.flags.includes("slave"));
    const orphan = masters.find((master) => !replicas.some((replica) => replica.masterId === master.id));
    if (liveEntries.length === 6 && orphan) {
      return pending(`${server.name} sees master ${address(orphan.address)} without a replica`, server);
    }
  }
  for (const server of live) {
    const info = await server.info("replication");
    if (info.role === "slave" && (info.master_link_status !== "up" || info.master_sync_in_progress !== "0")) {
      return pending(`replica ${server.name} master_link_status:${info.master_link_status}`, server);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Sentinel

export interface RedisSentinelHandle {
  sentinels: HostPort[];
  name: string;
  env: { REDIS_SENTINELS: string; REDIS_SENTINEL_NAME: string };
  /** Asked of a sentinel: SENTINEL get-master-addr-by-name. */
  master(): Promise<HostPort>;
  /**
   * Forces a failover (SENTINEL FAILOVER) and waits until the sentinels report the other node as master and it answers ROLE master.
   * The old master stays a master until Sentinel demotes it (its fixed 8 s grace, about 10 s in all);
   * a following failover() or killMaster() first waits for that, as it needs a synced replica.
   */
  failover(): Promise<HostPort>;
  /** SIGKILLs the current master (once the replica holds all its writes) and waits for the sentinels to promote the replica. */
  killMaster(): Promise<HostPort>;
  stop(): Promise<void>;
}

const MASTER_NAME = "adiuva";

/**
 * How to run a sentinel: Debian's redis-sentinel (package redis-sentinel) when installed, else
 * `redis-server <conf> --sentinel`. Both are the same program (Debian ships both names as links to
 * one binary, which picks sentinel mode from its name or the flag).
 */
function sentinelCommand(config: string): string[] {
  return Bun.which("redis-sentinel") ? ["redis-sentinel", config] : ["redis-server", config, "--sentinel"];
}

/** Flat [key, value, key, value…] replies of SENTINEL replicas / sentinels, as records. */
function records(reply: unknown): Array<Record<string, string>> {
  return (reply as string[][]).map((flat) => {
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i]!] = flat[i + 1]!;
    return record;
  });
}

export async function startRedisSentinel(options: { downAfterMs?: number } = {}): Promise<RedisSentinelHandle> {
  const downAfterMs = options.downAfterMs ?? 1000;
  // Sentinel's own clock: down-after, then the ODOWN agreement and the leader vote (each ~1 s),
  // then the promotion; a split vote retries after 2 × failover-timeout.
  const failoverTimeoutMs = Math.max(3000, downAfterMs * 3);
  const waitMs = Math.max(30_000, downAfterMs * 10 + failoverTimeoutMs * 3);
  const dir = makeTempDir("adiuva-redis-sentinel-");
  const dataNodes: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const stop = once(() => stopAll([...dataNodes, ...sentinels], dir));

  try {
    const master = await startOnFreePort(
      dir,
      false,
      (port) => `redis-${port}.log`,
      (port) => dataNodeArgs(dir, port),
    );
    dataNodes.push(master);
    const replica = await startOnFreePort(
      dir,
      false,
      (port) => `redis-${port}.log`,
      (port) => [...dataNodeArgs(dir, port), "--replicaof", HOST, String(master.port)],
    );
    dataNodes.push(replica);
    // Synced before the sentinels start: their first INFO to the master then lists the replica at
    // once, instead of at the next INFO ten seconds later.
    await replicaCaughtUp(master, replica, START_TIMEOUT_MS);
    for (let index = 0; index < 3; index++) {
      sentinels.push(
        await startOnFreePort(
          dir,
          false,
          (port) => `sentinel-${port}.log`,
          (port) => sentinelCommand(writeSentinelConfig(dir, port, master.port, downAfterMs, failoverTimeoutMs)),
        ),
      );
    }
    await waitUntil(
      "every sentinel knows the replica and the two other sentinels (quorum reachable)",
      START_TIMEOUT_MS,
      async () => {
        for (const sentinel of sentinels) {
          const known = await sentinelKnows(sentinel, replica, 2);
          if (known !== true) return known;
        }
        return true;
      },
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const dataNodeAt = (node: HostPort): RedisProcess => {
    const server = dataNodes.find((candidate) => candidate.port === node.port);
    if (!server) throw new Error(`sentinels report ${address(node)}, which is not a node of this group`);
    return server;
  };
  const masterAsked = async (sentinel: RedisProcess): Promise<HostPort> => {
    const [host, port] = (await sentinel.command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)) as [
      string,
      string,
    ];
    return { host, port: Number(port) };
  };
  const master = async (): Promise<HostPort> => {
    let lastError: unknown = new Error("no sentinel is running");
    for (const sentinel of sentinels) {
      try {
        return await masterAsked(sentinel);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  };
  /** The current master and the other node, once that one replicates it in full and every sentinel sees it. */
  const currentPair = async (): Promise<{ current: RedisProcess; other: RedisProcess }> => {
    const current = dataNodeAt(await master());
    const other = dataNodes.find((node) => node !== current);
    if (!current.alive || !other?.alive) {
      throw new Error(
        `no replica left to promote: ${dataNodes.map((node) => `${node.name} ${node.alive ? "up" : "killed"}`).join(", ")}`,
      );
    }
    // After a failover Sentinel turns the old master into a replica only some seconds later.
    await replicaCaughtUp(current, other, waitMs);
    await waitUntil(`every sentinel lists ${other.name} as a replica`, waitMs, async () => {
      for (const sentinel of sentinels) {
        const known = await sentinelKnows(sentinel, other, 0);
        if (known !== true) return known;
      }
      return true;
    });
    return { current, other };
  };
  const promoted = async (goal: string, other: RedisProcess): Promise<void> => {
    await waitUntil(goal, waitMs, async () => {
      for (const sentinel of sentinels) {
        const reported = await masterAsked(sentinel);
        if (reported.port !== other.port) return pending(`${sentinel.name} reports ${address(reported)}`, sentinel);
      }
      return answersRole(other, "master");
    });
  };

  const sentinelAddresses = sentinels.map(({ host, port }) => ({ host, port }));
  return {
    sentinels: sentinelAddresses,
    name: MASTER_NAME,
    env: { REDIS_SENTINELS: hostPortList(sentinelAddresses), REDIS_SENTINEL_NAME: MASTER_NAME },
    master,

    async failover(): Promise<HostPort> {
      const { current, other } = await currentPair();
      const sentinel = sentinels[0]!;
      await sentinel.command("SENTINEL", "FAILOVER", MASTER_NAME);
      await promoted(`sentinels report ${other.name} as master after SENTINEL FAILOVER from ${current.name}`, other);
      return { host: other.host, port: other.port };
    },

    async killMaster(): Promise<HostPort> {
      const { current, other } = await currentPair();
      await current.kill();
      await promoted(`sentinels promote ${other.name} after master ${current.name} was killed`, other);
      return { host: current.host, port: current.port };
    },

    stop,
  };
}

/** The sentinel's view of `replica` is healthy and it sees `otherSentinels` peers. */
async function sentinelKnows(
  sentinel: RedisProcess,
  replica: HostPort,
  otherSentinels: number,
): Promise<true | Pending> {
  const replicas = records(await sentinel.command("SENTINEL", "replicas", MASTER_NAME));
  const entry = replicas.find((record) => Number(record.port) === replica.port);
  if (entry?.flags !== "slave") {
    return pending(`${sentinel.name} lists replica ${address(replica)} as ${entry?.flags ?? "unknown"}`, sentinel);
  }
  if (otherSentinels === 0) return true;
  const peers = records(await sentinel.command("SENTINEL", "sentinels", MASTER_NAME)).filter(
    (record) => record.flags === "sentinel",
  );
  if (peers.length < otherSentinels) return pending(`${sentinel.name} knows ${peers.length} other sentinels`, sentinel);
  return true;
}

/** Sentinel rewrites its config file (known replicas, peers, epochs), so each gets a file of its own. */
function writeSentinelConfig(
  dir: string,
  port: number,
  masterPort: number,
  downAfterMs: number,
  failoverTimeoutMs: number,
): string {
  const path = join(dir, `sentinel-${port}.conf`);
  writeFileSync(
    path,
    [
      `port ${port}`,
      `bind ${HOST}`,
      "daemonize no",
      `dir ${dir}`,
      "sentinel resolve-hostnames no",
      `sentinel monitor ${MASTER_NAME} ${HOST} ${masterPort} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} ${downAfterMs}`,
      `sentinel failover-timeout ${MASTER_NAME} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`,
      "",
    ].join("\n"),
  );
  return path;
}
