import { existsSync, readdirSync, statSync } from "node:fs";
import type { Subprocess } from "bun";
import { SERVICE_NAMES } from "../../src/shared/env";
import { eventually } from "../../src/shared/testing";

export type LogLine = Record<string, unknown> & { msg?: string };

/** Only what a container would get: no DATABASE_URL or REDIS_URL leaks in from the test runner. */
export function isolatedEnv(variables: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp" };
  for (const [key, value] of Object.entries(variables)) if (value !== undefined) env[key] = value;
  return env;
}

/** A service run as a real process; its JSON log lines on stdout are collected as they come. */
export class ServiceProcess implements AsyncDisposable {
  readonly logs: LogLine[] = [];
  readonly stderr: Promise<string>;
  private readonly child: Subprocess<"ignore", "pipe", "pipe">;
  private exitCode: number | undefined;

  constructor(command: string[], env: Record<string, string>, cwd?: string) {
    this.child = Bun.spawn(command, { env, cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    this.child.exited.then((code) => {
      this.exitCode = code;
    });
    this.stderr = new Response(this.child.stderr).text();
    void this.collect();
  }

  private async collect(): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = "";
    const reader = this.child.stdout.getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      buffered += decoder.decode(chunk.value, { stream: true });
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ msg: line });
        }
      }
    }
  }

  /** The first log line `match` accepts; throws with stderr when the process exits or time runs out. */
  async waitForLog(match: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const found = await eventually(
      () => this.logs.find(match),
      (line) => line !== undefined || this.exitCode !== undefined,
      timeoutMs,
    );
    if (found) return found;
    throw new Error(`no such log line (exit code ${this.exitCode}); stderr: ${await this.stderrSoFar()}`);
  }

  /** The port from the server's "starting" line, logged as it begins to listen, before any dependency answers. */
  async startingPort(): Promise<number> {
    return (await this.waitForLog((line) => line.msg === "starting")).port as number;
  }

  /** The port from the server's "listening" line (PORT=0 lets the OS choose), logged once API routes are served. */
  async port(): Promise<number> {
    return (await this.waitForLog((line) => line.msg === "listening")).port as number;
  }

  /** The metrics port from the same line (any free one when PORT=0 and METRICS_PORT is unset). */
  async metricsPort(): Promise<number> {
    return (await this.waitForLog((line) => line.msg === "listening")).metrics_port as number;
  }

  get pid(): number {
    return this.child.pid;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** The exit code, or "timeout" if the process is still running after `timeoutMs`. */
  exited(timeoutMs: number): Promise<number | "timeout"> {
    return Promise.race([this.child.exited, Bun.sleep(timeoutMs).then(() => "timeout" as const)]);
  }

  private stderrSoFar(): Promise<string> {
    return this.exitCode === undefined ? Promise.resolve("(still running)") : this.stderr;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.exitCode === undefined) this.child.kill("SIGKILL");
    await this.child.exited;
  }
}

/** True when a new TCP connection to the port is accepted. */
export async function accepts(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/** dist/ is reusable when every executable is newer than every input of the build. */
export function freshDist(): boolean {
  const inputs = [
    "package.json",
    "bun.lock",
    "scripts/build.ts",
    ...readdirSync("src", { recursive: true }).map((file) => `src/${file}`),
  ];
  const newestInput = Math.max(...inputs.map((file) => statSync(file).mtimeMs));
  return SERVICE_NAMES.every(
    (name) => existsSync(`dist/${name}-service`) && statSync(`dist/${name}-service`).mtimeMs > newestInput,
  );
}
