import { Elysia } from "elysia";
// Not in the package's exports, hence the path; `bun build --compile` embeds the file. A file
// import is its path, a string; the .js file has no declarations of its own.
// @ts-expect-error TS7016
import scalarBundle from "../../node_modules/@scalar/api-reference/dist/browser/standalone.js" with { type: "file" };
import { type DocumentedRoute, type OpenApiOptions, openApiDocument } from "./openapi";

export interface DocsOptions extends OpenApiOptions {
  /** Where the page lives; the document is at `${path}/json`, the page's script at `${path}/scalar.js`. */
  path: string;
  /** The application's routes, read when the document is first asked for (every plugin is in by then). */
  routes: () => readonly DocumentedRoute[];
}

/** Scalar's settings: nothing fetched from elsewhere (fonts, telemetry), so the page works offline. */
const SCALAR_CONFIGURATION = { withDefaultFonts: false, telemetry: false, showDeveloperTools: "never" };

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

/**
 * The API reference page, its OpenAPI document and the page's script, all served by the service
 * itself: the script is `@scalar/api-reference`'s standalone bundle from node_modules (embedded in
 * the compiled executables), so the page needs no CDN.
 */
export function docsPlugin(options: DocsOptions) {
  const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(options.title)}</title>
  </head>
  <body>
    <script id="api-reference" data-url="${options.path}/json" data-configuration="${escapeHtml(JSON.stringify(SCALAR_CONFIGURATION))}"></script>
    <script src="${options.path}/scalar.js"></script>
  </body>
</html>
`;
  let document: ReturnType<typeof openApiDocument> | undefined;
  const hidden = { detail: { hide: true } };
  return new Elysia({ name: "adiuva-docs", seed: options.path })
    .get(
      options.path,
      ({ set }) => {
        set.headers["content-type"] = "text/html; charset=utf-8";
        return page;
      },
      hidden,
    )
    .get(
      `${options.path}/json`,
      () => {
        document ??= openApiDocument(options.routes(), options);
        return document;
      },
      hidden,
    )
    .get(
      `${options.path}/scalar.js`,
      ({ set }) => {
        set.headers["content-type"] = "text/javascript; charset=utf-8";
        set.headers["cache-control"] = "public, max-age=86400";
        return Bun.file(scalarBundle as string);
      },
      hidden,
    );
}
