import pino from "pino";

export type Logger = pino.Logger;

/** JSON lines on stdout, every line tagged with service and instance. */
export function createLogger(options: { service: string; instance?: string; level?: string }): Logger {
  return pino({
    level: options.level ?? "info",
    base: options.instance ? { service: options.service, instance: options.instance } : { service: options.service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: [
        "password",
        "*.password",
        "token",
        "*.token",
        "refresh_token",
        "*.refresh_token",
        "authorization",
        "*.authorization",
        "key",
        "*.key",
      ],
      censor: "[redacted]",
    },
  });
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => pino({ level: "silent" });
