/**
 * Deadlines of pending calls, grouped by their due time rounded up to `grainMs`: one timer per
 * group instead of one per call. A busy caller starts and settles tens of thousands of calls a
 * second, each arming and clearing a deadline that almost never fires; per-call timers cost it
 * about 0.9 µs of its ~11 µs per call (bench/RESULTS.md, "Device RPC: the cheaper call path"). A
 * deadline fires at most `grainMs` late, never early. The item carries its group (`due`), so arming
 * and clearing touch no map keyed by the item.
 */
export class Deadlines<T extends { due?: number }> {
  private readonly groups = new Map<number, { items: Set<T>; timer: ReturnType<typeof setTimeout> }>();

  constructor(
    private readonly onExpired: (item: T) => void,
    private readonly grainMs = 10,
  ) {}

  /** (Re)arms `item`'s deadline `ms` from now. */
  arm(item: T, ms: number): void {
    this.clear(item);
    const now = performance.now();
    const due = Math.ceil((now + ms) / this.grainMs) * this.grainMs;
    let group = this.groups.get(due);
    if (!group) {
      group = { items: new Set<T>(), timer: setTimeout(() => this.expire(due), due - now) };
      this.groups.set(due, group);
    }
    group.items.add(item);
    item.due = due;
  }

  clear(item: T): void {
    const due = item.due;
    if (due === undefined) return;
    item.due = undefined;
    const group = this.groups.get(due);
    if (!group) return;
    group.items.delete(item);
    if (group.items.size > 0) return;
    clearTimeout(group.timer);
    this.groups.delete(due);
  }

  /** Timers currently armed (one per group of deadlines). */
  get timers(): number {
    return this.groups.size;
  }

  private expire(due: number): void {
    const group = this.groups.get(due);
    if (!group) return;
    this.groups.delete(due);
    for (const item of group.items) {
      item.due = undefined;
      this.onExpired(item);
    }
  }
}
