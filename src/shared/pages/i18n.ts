/** The languages every page is written in; the first is the default. */
export const PAGE_LANGUAGES = ["en", "it"] as const;
export type PageLanguage = (typeof PAGE_LANGUAGES)[number];
export const DEFAULT_LANGUAGE: PageLanguage = PAGE_LANGUAGES[0];

/** One text per language: a page's dictionary is `Translations<{ title: string; ... }>`. */
export type Translations<T> = Record<PageLanguage, T>;

const isPageLanguage = (tag: string): tag is PageLanguage => (PAGE_LANGUAGES as readonly string[]).includes(tag);

/**
 * The page language for an `Accept-Language` header (RFC 9110 §12.5.4): the supported primary
 * subtag with the highest weight, the earlier one on a tie; `q=0` excludes. No header, or nothing
 * supported: English.
 */
export function pickLanguage(acceptLanguage: string | null | undefined): PageLanguage {
  let best: { language: PageLanguage; weight: number } | undefined;
  for (const entry of (acceptLanguage ?? "").split(",").slice(0, 32)) {
    const [tag = "", ...parameters] = entry.trim().split(";");
    const primary = tag.trim().toLowerCase().split("-")[0] ?? "";
    if (!isPageLanguage(primary)) continue;
    const weight = weightOf(parameters);
    if (weight > 0 && (!best || weight > best.weight)) best = { language: primary, weight };
  }
  return best?.language ?? DEFAULT_LANGUAGE;
}

function weightOf(parameters: string[]): number {
  const q = parameters.map((parameter) => parameter.trim()).find((parameter) => parameter.startsWith("q="));
  if (!q) return 1;
  const weight = Number(q.slice(2));
  return Number.isFinite(weight) && weight >= 0 && weight <= 1 ? weight : 0;
}
