import type { AnyElysia } from "elysia";
import { createApp, type ServiceModule } from "./app";
import { closePlatform, type Platform } from "./platform";
import { withTimeout } from "./timeout";

export interface RunningServer {
  app: AnyElysia;
  port: number;
  url: string;
  /** Graceful shutdown: stop accepting, drain in-flight requests, stop modules, close pools. */
  stop(): Promise<void>;
}

/** Starts the modules (migrations, consumers) and then the HTTP/WebSocket server. */
export async function startServer(options: {
  platform: Platform;
  modules: ServiceModule[];
  port?: number;
  hostname?: string;
}): Promise<RunningServer> {
  const { platform, modules } = options;
  let draining = false;
  // Loaded before the first request, so no request waits for it.
  await platform.revocations.start();
  for (const module of modules) await module.start?.();
  const app = createApp({ platform, modules, isDraining: () => draining });
  app.listen({
    port: options.port ?? platform.env.PORT,
    hostname: options.hostname ?? platform.env.HOST,
    // Bun's own hard cap sits well above ours: a declared length over ours gets our 413 in the
    // error shape before the body is read; Bun's cap only stops unbounded chunked uploads.
    maxRequestBodySize: Math.max(platform.env.MAX_BODY_BYTES * 8, 8 * 1024 * 1024),
  });
  const server = app.server;
  if (!server) throw new Error("server did not start");
  const port = server.port ?? 0;
  const url = `http://127.0.0.1:${port}`;
  let stopping: Promise<void> | undefined;
  // Modules bound their own waits by the grace period; this is the backstop past it.
  const stopBoundMs = platform.env.SHUTDOWN_GRACE_MS + 5000;
  const stop = () => {
    stopping ??= (async () => {
      draining = true;
      const drained = server.stop(false);
      for (const module of [...modules].reverse()) {
        try {
          // A module waiting on an unreachable dependency must not keep the process from exiting.
          if (module.stop) await withTimeout(module.stop(), stopBoundMs, `module ${module.name} stop`);
        } catch (error) {
          platform.logger.warn({ err: error, module: module.name }, "module stop failed");
        }
      }
      const graceful = await Promise.race([
        drained.then(() => true),
        Bun.sleep(platform.env.SHUTDOWN_GRACE_MS).then(() => false),
      ]);
      if (!graceful) {
        platform.logger.warn("in-flight requests did not finish in time; closing them");
        await server.stop(true);
      }
      await closePlatform(platform);
    })();
    return stopping;
  };
  platform.logger.info({ port, modules: modules.map((module) => module.name) }, "listening");
  return { app, port, url, stop };
}
