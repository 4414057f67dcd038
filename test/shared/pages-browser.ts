// What the browser tests of any service's pages share: Debian's headless Chromium through
// playwright-core (launched once per file, or the reason it cannot be), pages whose CSP violations,
// console errors and uncaught exceptions are recorded, axe-core runs (in a CSP-bypassing context, or
// through CDP on a strict page), and the Tab order with its visible outline.
import { readFileSync } from "node:fs";
import type { AxeResults } from "axe-core";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SCREENSHOTS = "test-artifacts/pages";
const AXE_SOURCE = readFileSync(Bun.resolveSync("axe-core/axe.min.js", import.meta.dir), "utf8");
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];

/** Launches Chromium; the reason it cannot, otherwise. */
export async function launchChromium(): Promise<Browser | string> {
  try {
    return await chromium.launch({ executablePath: CHROMIUM, timeout: 30_000 });
  } catch (error) {
    return `Chromium at ${CHROMIUM} could not be launched (apt-get install chromium, or set CHROMIUM_PATH): ${(error as Error).message.split("\n")[0]}`;
  }
}

export interface Watched {
  page: Page;
  /** CSP violations the page reported, console errors, uncaught exceptions. */
  problems: string[];
}

/** A page whose CSP violations, console errors and uncaught exceptions are all recorded. */
export async function watchedPage(context: BrowserContext): Promise<Watched> {
  const page = await context.newPage();
  const problems: string[] = [];
  await page.exposeFunction("reportViolation", (text: string) => problems.push(`csp: ${text}`));
  // Runs before the page's own scripts, outside its CSP (the browser injects it, not the page).
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      const report = (window as unknown as { reportViolation(text: string): void }).reportViolation;
      report(`${event.effectiveDirective} blocked ${event.blockedURI}`);
    });
  });
  page.on("console", (message) => {
    if (message.type() === "error" || /content security policy/i.test(message.text())) {
      problems.push(`console ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  return { page, problems };
}

/** The serious and critical violations of an axe run, one line each. */
export const seriousViolations = (results: AxeResults) =>
  results.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map(
      (violation) =>
        `${violation.id}: ${violation.help} (${violation.nodes.map((node) => node.target.join(" ")).join(", ")})`,
    );

const runAxe = async (page: Page) =>
  seriousViolations(
    (await page.evaluate(
      (tags) =>
        (window as unknown as { axe: { run(options: unknown): Promise<unknown> } }).axe.run({
          runOnly: { type: "tag", values: tags },
        }),
      AXE_TAGS,
    )) as AxeResults,
  );

/** axe-core on a page of a context made with `bypassCSP: true`, its source added as a script tag. */
export async function axeViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ content: AXE_SOURCE });
  return runAxe(page);
}

/** axe-core on an already open strict page: its source goes in through CDP, which the CSP does not govern. */
export async function axeViolationsOverCdp(page: Page): Promise<string[]> {
  const session = await page.context().newCDPSession(page);
  try {
    await session.send("Runtime.evaluate", { expression: AXE_SOURCE });
    return await runAxe(page);
  } finally {
    await session.detach();
  }
}

/** What has keyboard focus: its tag, class, name (for fields) and outline. */
export async function focused(page: Page) {
  return page.evaluate(() => {
    const element = document.activeElement as HTMLElement;
    const style = getComputedStyle(element);
    return {
      tag: element.tagName,
      className: element.className,
      name: element.getAttribute("name") ?? "",
      outline: style.outlineStyle,
      width: style.outlineWidth,
      top: element.getBoundingClientRect().top,
    };
  });
}
