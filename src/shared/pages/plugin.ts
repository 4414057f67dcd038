import { createHash } from "node:crypto";
import type { Server } from "bun";
import { type AnyElysia, Elysia } from "elysia";
import { clientIp } from "../client-ip";
import { errorBody, ServiceError, tooManyRequests } from "../errors";
import { requestIdOf } from "../http";
import type { Logger } from "../logger";
import type { Platform } from "../platform";
import { type RateCheck, type RateLimiter, rateLimitHeaders } from "../rate-limit";
import type { ClientInfo } from "../verb";
import { pageSecurityHeaders } from "./headers";
import { html, type SafeHtml } from "./html";
import { type PageLanguage, pickLanguage, type Translations } from "./i18n";
import { renderLayout } from "./layout";
import { PAGE_SCRIPT } from "./page-script";
import { PAGE_STYLES } from "./styles";

/** What a page sees of its request: already rate limited, its language chosen. */
export interface PageRequest {
  request: Request;
  url: URL;
  lang: PageLanguage;
  /** The client address, as the rate limit counts it (for a verb's own per-address limits). */
  client: ClientInfo;
}

/** A rendered page: what goes in `<main>` (the heading first) and the document's title. */
export interface PageView {
  status?: number;
  title: string;
  main: SafeHtml;
}

/** One page of the registry: its path under the prefix (`""` is the prefix itself) and its renderer. */
export interface PageDefinition {
  path: string;
  render(page: PageRequest): Promise<PageView> | PageView;
}

/** A JSON answer a page's script fetches (a poll), under the same limit and headers as the pages. */
export interface PageEndpoint {
  path: string;
  answer(page: PageRequest): Promise<Record<string, unknown>>;
}

/** Where a form sends the browser once it is done: a `303 See Other` to a page (path and query). */
export interface SeeOther {
  seeOther: string;
}

/**
 * A form of the registry, posted by the browser itself (`application/x-www-form-urlencoded`), so
 * it works without the script; under the same limit and headers as the pages. It answers with a
 * page (an error, with its status), or sends the browser to another page so that a reload does not
 * post again. A ServiceError it throws with status 429 or 503 becomes the 429 or 503 page.
 */
export interface PageForm {
  path: string;
  submit(page: PageRequest & { fields: URLSearchParams }): Promise<PageView | SeeOther> | PageView | SeeOther;
}

export interface PagesOptions {
  /** Names the plugin and the per-IP rate-limit policy (`billing-pages`). */
  name: string;
  /** Where the pages live (`/billing`); Traefik routes it to the service that serves them. */
  prefix: string;
  /** The registry: every page this service serves under `prefix`. */
  pages: PageDefinition[];
  endpoints?: PageEndpoint[];
  forms?: PageForm[];
  platform: Platform;
  limiter: RateLimiter;
  logger: Logger;
  /** Page loads and polls one client address may make per minute. */
  requestsPerMinute: number;
}

type FramePage = "notFound" | "tooMany" | "unavailable" | "badForm";

const FRAME_PAGES: Translations<Record<FramePage, { title: string; text: string }>> = {
  en: {
    badForm: {
      title: "Form not understood",
      text: "This form could not be read. Go back, reload the page and send it again.",
    },
    notFound: { title: "Page not found", text: "There is no page at this address. Go back to the app and try again." },
    tooMany: {
      title: "Too many requests",
      text: "This address has asked for pages too often. Wait a minute, then reload.",
    },
    unavailable: {
      title: "Temporarily unavailable",
      text: "Something went wrong on our side. Reload this page in a moment.",
    },
  },
  it: {
    badForm: {
      title: "Modulo non leggibile",
      text: "Non è stato possibile leggere il modulo. Torna indietro, ricarica la pagina e invialo di nuovo.",
    },
    notFound: {
      title: "Pagina non trovata",
      text: "A questo indirizzo non c'è nessuna pagina. Torna all'app e riprova.",
    },
    tooMany: {
      title: "Troppe richieste",
      text: "Da questo indirizzo sono arrivate troppe richieste. Attendi un minuto, poi ricarica.",
    },
    unavailable: {
      title: "Non disponibile",
      text: "Qualcosa è andato storto da parte nostra. Ricarica la pagina tra poco.",
    },
  },
};

const frameView = (lang: PageLanguage, which: keyof (typeof FRAME_PAGES)["en"], status: number): PageView => {
  const { title, text } = FRAME_PAGES[lang][which];
  return { status, title, main: html`<h1>${title}</h1>\n<p>${text}</p>` };
};

/** Far more than any form of the pages needs (a token and two passwords of at most 256 characters). */
const FORM_MAX_BYTES = 8192;

/** Static assets change only with a deploy; an hour keeps repeat visits fast without pinning old ones for long. */
const ASSET_CACHE = "public, max-age=3600";

interface HandlerContext {
  request: Request;
  server: Server<unknown> | null;
  set: { status?: number | string; headers: Record<string, string | number> };
}

/**
 * Server-rendered pages for browsers: public (no token), HTML with a stylesheet and one script of
 * their own, strict security headers on every answer, a per-IP rate limit on every page and poll,
 * and a 404 page for any other path under the prefix. Left out of the OpenAPI document: they are
 * pages for people, not part of the API. A service lists its pages in `pages` (and the forms they
 * post, in `forms`); another service (auth's account pages) mounts its own registry under its own prefix.
 */
export function pagesPlugin(options: PagesOptions): AnyElysia {
  const { prefix, platform, logger } = options;
  const assetsPath = `${prefix}/assets`;
  const hops = platform.env.TRUSTED_PROXY_HOPS;
  const policy = options.name;
  const rule = { limit: options.requestsPerMinute, windowMs: 60_000 };
  const hidden = { detail: { hide: true } };

  const checkClient = async ({ request, server }: HandlerContext): Promise<RateCheck> => {
    // Hashed: no client address in a Redis key (src/shared/keys.ts builds keys from our own ids).
    const subject = createHash("sha256")
      .update(`ip:${clientIp(request, server, hops)}`)
      .digest("hex")
      .slice(0, 32);
    const decision = await options.limiter.check(platform.keys.rateLimit(policy, subject), rule);
    return { allowed: decision.allowed, decision, headers: rateLimitHeaders(policy, rule, decision) };
  };

  const baseHeaders = (context: HandlerContext, cacheControl: string) => {
    Object.assign(context.set.headers, pageSecurityHeaders(context.request, hops), { "cache-control": cacheControl });
  };

  const pageRequest = ({ request, server }: HandlerContext): PageRequest => ({
    request,
    url: new URL(request.url),
    lang: pickLanguage(request.headers.get("accept-language")),
    client: { ip: clientIp(request, server, hops) },
  });

  const sendPage = (context: HandlerContext, page: PageRequest, view: PageView) => {
    context.set.status = view.status ?? 200;
    context.set.headers["content-type"] = "text/html; charset=utf-8";
    return renderLayout({ lang: page.lang, title: view.title, main: view.main, assetsPath });
  };

  /** Headers, limit, language, then the renderer; a renderer's failure becomes the 503 page. */
  const servePage = (render: PageDefinition["render"]) => async (context: HandlerContext) => {
    baseHeaders(context, "no-store");
    context.set.headers.vary = "Accept-Language";
    const page = pageRequest(context);
    const check = await checkClient(context);
    Object.assign(context.set.headers, check.headers);
    if (!check.allowed) return sendPage(context, page, frameView(page.lang, "tooMany", 429));
    try {
      return sendPage(context, page, await render(page));
    } catch (error) {
      return sendFailure(context, page, error);
    }
  };

  /**
   * A renderer's or form's failure: a refusal it was given (429, 503 with their headers) becomes
   * that page; anything else is logged (the path only: a query may hold a token) and is the 503 page.
   */
  const sendFailure = (context: HandlerContext, page: PageRequest, error: unknown) => {
    if (error instanceof ServiceError && (error.status === 429 || error.status === 503)) {
      if (error.status === 503) logger.warn({ code: error.code, path: page.url.pathname }, "page unavailable");
      Object.assign(context.set.headers, error.headers);
      return sendPage(
        context,
        page,
        frameView(page.lang, error.status === 429 ? "tooMany" : "unavailable", error.status),
      );
    }
    logger.error({ err: error, path: page.url.pathname }, "page failed");
    context.set.headers["retry-after"] = "5";
    return sendPage(context, page, frameView(page.lang, "unavailable", 503));
  };

  /** The submitted fields, or undefined for anything but a form of reasonable size. */
  const formFields = async (request: Request): Promise<URLSearchParams | undefined> => {
    const type = (request.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/x-www-form-urlencoded") return undefined;
    // A declared length says it at once; a chunked body is read (Bun bounds it) and then measured.
    if (Number(request.headers.get("content-length") ?? 0) > FORM_MAX_BYTES) return undefined;
    const text = await request.text().catch(() => undefined);
    if (text === undefined || Buffer.byteLength(text) > FORM_MAX_BYTES) return undefined;
    return new URLSearchParams(text);
  };

  /** Headers and limit as for a page; then the form's answer: a page, or a 303 to one. */
  const serveForm = (form: PageForm) => async (context: HandlerContext) => {
    baseHeaders(context, "no-store");
    context.set.headers.vary = "Accept-Language";
    const page = pageRequest(context);
    const check = await checkClient(context);
    Object.assign(context.set.headers, check.headers);
    if (!check.allowed) return sendPage(context, page, frameView(page.lang, "tooMany", 429));
    const fields = await formFields(context.request);
    if (!fields) return sendPage(context, page, frameView(page.lang, "badForm", 400));
    try {
      const outcome = await form.submit({ ...page, fields });
      if (!("seeOther" in outcome)) return sendPage(context, page, outcome);
      context.set.status = 303;
      context.set.headers.location = outcome.seeOther;
      return "";
    } catch (error) {
      return sendFailure(context, page, error);
    }
  };

  const serveEndpoint = (endpoint: PageEndpoint) => async (context: HandlerContext) => {
    baseHeaders(context, "no-store");
    const check = await checkClient(context);
    Object.assign(context.set.headers, check.headers);
    if (!check.allowed) {
      context.set.status = 429;
      return errorBody(
        tooManyRequests("rate_limited", "too many requests, slow down", {}),
        requestIdOf(context.request),
      );
    }
    return endpoint.answer(pageRequest(context));
  };

  const serveAsset = (body: string, contentType: string) => (context: HandlerContext) => {
    baseHeaders(context, ASSET_CACHE);
    context.set.headers["content-type"] = contentType;
    return body;
  };

  // Routes come from the registry at run time, so the plugin's type cannot list them, and its
  // handlers see Elysia's context untyped: `get` gives each the part it reads.
  let app: AnyElysia = new Elysia({ name: `pages:${options.name}` });
  const get = (path: string, serve: (context: HandlerContext) => unknown) => {
    app = app.get(path, (context: object) => serve(context as HandlerContext), hidden);
  };
  // The form reads its own body: Elysia parses nothing, so no content type is refused before the
  // page can answer in its own style.
  const post = (path: string, serve: (context: HandlerContext) => unknown) => {
    app = app.post(path, (context: object) => serve(context as HandlerContext), { ...hidden, parse: "none" });
  };
  get(`${assetsPath}/pages.css`, serveAsset(PAGE_STYLES, "text/css; charset=utf-8"));
  get(`${assetsPath}/pages.js`, serveAsset(PAGE_SCRIPT, "text/javascript; charset=utf-8"));
  for (const page of options.pages) get(`${prefix}${page.path}`, servePage(page.render));
  for (const endpoint of options.endpoints ?? []) get(`${prefix}${endpoint.path}`, serveEndpoint(endpoint));
  for (const form of options.forms ?? []) post(`${prefix}${form.path}`, serveForm(form));
  get(
    `${prefix}/*`,
    servePage(({ lang }) => frameView(lang, "notFound", 404)),
  );
  return app;
}
