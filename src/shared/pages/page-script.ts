/*
 * The pages' only script, served from their own origin (the CSP allows no inline script). Written
 * here in TypeScript so it is type-checked and linted with the rest; `PAGE_SCRIPT` is its source
 * as Bun compiled it, wrapped to run once. It uses nothing outside its own body.
 *
 * What the markup asks of it:
 * - `a[data-open-app="now"]`: open the app's deep link at once (the link stays as the fallback).
 * - `[data-poll-url]`: fetch that URL every `data-poll-interval-ms` until its JSON `state` is no
 *   longer "pending" or `data-poll-attempts` run out; then show `data-text-<state>` (or
 *   `data-text-timeout`) with `{name}` filled from the answer, as text, in that element (a live
 *   region), and open the app if the link says `data-open-app="when-done"`.
 */
export function pageScript(): void {
  const appLink = document.querySelector<HTMLAnchorElement>("a[data-open-app]");
  const status = document.querySelector<HTMLElement>("[data-poll-url]");

  const afterLoad = (run: () => void) => {
    if (document.readyState === "complete") setTimeout(run, 0);
    else window.addEventListener("load", () => setTimeout(run, 0), { once: true });
  };

  const openApp = () => {
    if (!appLink || appLink.dataset.opened) return;
    // Recorded before leaving, so the page (and its tests) can tell the attempt was made.
    appLink.dataset.opened = "true";
    window.location.href = appLink.href;
  };

  if (!status) {
    // Once the page has loaded: leaving for the app while it loads would cut its rendering short.
    if (appLink?.dataset.openApp === "now") afterLoad(openApp);
    return;
  }
  const target = status;
  const url = target.dataset.pollUrl ?? "";
  const intervalMs = Number(target.dataset.pollIntervalMs) || 2000;
  let attemptsLeft = Number(target.dataset.pollAttempts) || 15;

  const finish = (state: string, answer: Record<string, unknown>) => {
    const key = `text${state.charAt(0).toUpperCase()}${state.slice(1)}`;
    const template = target.dataset[key] ?? target.dataset.textTimeout ?? "";
    target.textContent = template.replace(/\{(\w+)\}/g, (_match, name: string) => {
      const value = answer[name];
      return typeof value === "string" ? value : "";
    });
    target.dataset.pollDone = state;
    if (appLink?.dataset.openApp === "when-done") openApp();
  };

  const stateOf = async (): Promise<{ state: string; answer: Record<string, unknown> }> => {
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
      // A refusal (429, 503) is no verdict: keep waiting while attempts remain.
      if (!response.ok) return { state: "pending", answer: {} };
      const answer = (await response.json()) as Record<string, unknown>;
      const state = typeof answer.state === "string" && /^[a-z]+$/.test(answer.state) ? answer.state : "pending";
      return { state, answer };
    } catch {
      return { state: "pending", answer: {} };
    }
  };

  const poll = async () => {
    attemptsLeft -= 1;
    const { state, answer } = await stateOf();
    if (state !== "pending") return finish(state, answer);
    if (attemptsLeft <= 0) return finish("timeout", {});
    setTimeout(poll, intervalMs);
  };
  setTimeout(poll, intervalMs);
}

/** The script as served. */
export const PAGE_SCRIPT = `"use strict";(${pageScript.toString()})();\n`;
