import type { ClientInfo } from "../shared/verb";
import type { Locale } from "./model";

const SUPPORTED: readonly Locale[] = ["en", "it"];
/** Longest device name kept from a User-Agent (a client-chosen header, so bounded and cleaned). */
const MAX_DEVICE_NAME = 100;

/**
 * The first language of Accept-Language, by q order, that mails exist in; English otherwise.
 * `it-IT;q=0.9, en;q=0.8` → `it`; `*` and unknown languages are skipped.
 */
export function localeFrom(acceptLanguage: string | undefined): Locale {
  if (!acceptLanguage) return "en";
  const ranked = acceptLanguage
    .slice(0, 500)
    .split(",")
    .map((part, index) => {
      const [tag = "", ...params] = part.trim().split(";");
      const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/i.exec(p)?.[1]).find((value) => value !== undefined);
      return { language: tag.trim().toLowerCase().split("-")[0] ?? "", q: q === undefined ? 1 : Number(q), index };
    })
    .filter(({ q }) => Number.isFinite(q) && q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index);
  return ranked.map(({ language }) => language).find((l): l is Locale => SUPPORTED.includes(l as Locale)) ?? "en";
}

/** The session's name: what the client called itself, else its User-Agent, without control characters and bounded. */
export function deviceNameFrom(given: string | undefined, client: Pick<ClientInfo, "userAgent">): string | null {
  const name = (given ?? client.userAgent ?? "")
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
    .replace(/[\u0000-\u001f\u007f]+/g, " ")
    .trim()
    .slice(0, MAX_DEVICE_NAME)
    .trim();
  return name === "" ? null : name;
}
