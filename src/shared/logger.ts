import pino from "pino";
import { redactLine, serializeError, withSafeErrors } from "./log-redaction";

export type Logger = pino.Logger;

/**
 * JSON lines on stdout (or `destination`), every line tagged with service and instance. Errors
 * keep their codes and names but not the values involved, and every line is redacted on its way
 * out: secret-named fields at any depth, secret-shaped text anywhere (src/shared/log-redaction.ts).
 */
export function createLogger(options: {
  service: string;
  instance?: string;
  level?: string;
  destination?: pino.DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: options.instance ? { service: options.service, instance: options.instance } : { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: withSafeErrors },
      serializers: { err: serializeError, error: serializeError },
      hooks: { streamWrite: redactLine },
    },
    options.destination,
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => pino({ level: "silent" });
