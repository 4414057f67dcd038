/** The app's deep link for one page: APP_DEEP_LINK with the page's path (and query, if any) appended. */
export function appLink(base: string, path: string): string {
  return `${base}${base.endsWith("/") ? "" : "/"}${path}`;
}
