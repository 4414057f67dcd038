/**
 * Polls `probe` until `check` holds or `timeoutMs` passes, then returns the last value so the
 * caller's assertion shows what was seen. The condition, not a fixed sleep, ends the wait.
 */
export async function eventually<T>(
  probe: () => Promise<T> | T,
  check: (value: T) => boolean,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (check(value) || Date.now() > deadline) return value;
    await Bun.sleep(intervalMs);
  }
}
