import { html, type SafeHtml } from "./html";
import type { PageLanguage, Translations } from "./i18n";

/** Words of the frame around every page. */
const FRAME: Translations<{ skip: string; brand: string; footer: string }> = {
  en: { skip: "Skip to content", brand: "Adiuva", footer: "You can close this tab once the app is open." },
  it: { skip: "Vai al contenuto", brand: "Adiuva", footer: "Puoi chiudere questa scheda quando l'app è aperta." },
};

export interface LayoutInput {
  lang: PageLanguage;
  title: string;
  /** What goes inside `<main>`: the page's heading first. */
  main: SafeHtml;
  /** Where this set of pages serves its stylesheet and script (`/billing/assets`). */
  assetsPath: string;
}

/**
 * The whole document: language, title, the same-origin stylesheet and script, and the landmarks
 * (banner, main, contentinfo) with a skip link to the main content. The empty icon keeps browsers
 * from asking for /favicon.ico, which no service serves.
 */
export function renderLayout({ lang, title, main, assetsPath }: LayoutInput): string {
  const frame = FRAME[lang];
  return html`<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${title} · ${frame.brand}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assetsPath}/pages.css">
<script src="${assetsPath}/pages.js" defer></script>
</head>
<body>
<a class="skip-link" href="#main">${frame.skip}</a>
<header><p class="brand">${frame.brand}</p></header>
<main id="main" tabindex="-1">
${main}
</main>
<footer><p>${frame.footer}</p></footer>
</body>
</html>
`.value;
}
