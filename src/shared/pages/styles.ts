/*
 * The pages' one stylesheet, served from their own origin (the CSP allows no inline style).
 * Contrast, measured as WCAG 2 defines it: text 15:1 and muted text 6:1 on the light background,
 * the button's text 6.6:1 on its colour; the dark scheme keeps every pair above 7:1. Form fields:
 * their border (muted) 6:1 against the page, the error colour 6.5:1 (light) and 8:1 (dark), so an
 * invalid field shows without relying on colour alone (its border also thickens, and the error is
 * written out). Keyboard focus always shows a 3px outline outside the element.
 */
export const PAGE_STYLES = `
:root {
  color-scheme: light dark;
  --bg: #ffffff;
  --panel: #f6f8fa;
  --text: #1f2328;
  --muted: #57606a;
  --accent: #0b5cad;
  --accent-text: #ffffff;
  --border: #d0d7de;
  --error: #b3261e;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117;
    --panel: #161b22;
    --text: #e6edf3;
    --muted: #9da7b3;
    --accent: #4da3ff;
    --accent-text: #0d1117;
    --border: #30363d;
    --error: #ff8a80;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; line-height: 1.5; }
body { margin: 0; min-height: 100vh; display: flex; flex-direction: column; background: var(--bg); color: var(--text); }
.skip-link { position: absolute; left: 1rem; top: -4rem; padding: 0.5rem 1rem; background: var(--accent); color: var(--accent-text); border-radius: 0.25rem; }
.skip-link:focus { top: 1rem; }
header, footer { padding: 1rem 1.5rem; }
footer { margin-top: auto; }
.brand { margin: 0; font-weight: 700; font-size: 1.125rem; }
main { width: calc(100% - 2rem); max-width: 36rem; margin: 2rem auto; padding: 2rem 1.5rem; background: var(--panel); border: 1px solid var(--border); border-radius: 0.75rem; }
main:focus { outline: none; }
h1 { margin: 0 0 1rem; font-size: 1.75rem; line-height: 1.25; }
p { margin: 0 0 1rem; }
.status { padding: 0.75rem 1rem; border-left: 4px solid var(--accent); background: var(--bg); border-radius: 0.25rem; }
.muted, footer { color: var(--muted); }
footer p { margin: 0; font-size: 0.875rem; }
.button { display: inline-block; padding: 0.75rem 1.25rem; border-radius: 0.5rem; background: var(--accent); color: var(--accent-text); font-weight: 600; text-decoration: none; }
.button:hover { text-decoration: underline; }
a { color: var(--accent); }
a:focus-visible, .button:focus-visible { outline: 3px solid var(--accent); outline-offset: 3px; }
button.button { border: 0; font: inherit; font-weight: 600; cursor: pointer; }
.button.secondary { background: transparent; color: var(--accent); border: 2px solid var(--accent); padding: calc(0.75rem - 2px) calc(1.25rem - 2px); }
form { margin: 0 0 1.5rem; }
label { display: block; margin: 0 0 0.25rem; font-weight: 600; }
.field { margin: 0 0 1rem; }
.field .muted { margin: 0.25rem 0 0; font-size: 0.875rem; }
input[type="password"] { display: block; width: 100%; padding: 0.625rem 0.75rem; font: inherit; color: var(--text); background: var(--bg); border: 1px solid var(--muted); border-radius: 0.375rem; }
input[type="password"]:focus-visible { outline: 3px solid var(--accent); outline-offset: 1px; }
input[aria-invalid="true"] { border-color: var(--error); border-width: 2px; }
.error { padding: 0.75rem 1rem; border-left: 4px solid var(--error); background: var(--bg); border-radius: 0.25rem; }
.handoff { margin-top: 2rem; padding-top: 1.5rem; border-top: 1px solid var(--border); }
h2 { margin: 0 0 0.5rem; font-size: 1.125rem; }
@media (prefers-reduced-motion: no-preference) { .button { transition: filter 0.15s; } .button:hover { filter: brightness(1.1); } }
`;
