/**
 * Sockets of one client IP that have not yet been welcomed, on this instance. A place is taken
 * when the upgrade is accepted and freed at `welcome` or close; one whose socket never opened (a
 * failed upgrade) frees itself after `holdMs`, which is longer than any socket may stay unwelcomed.
 */
export class PendingByIp {
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly holdMs: number,
  ) {}

  /** Takes a place for the IP: its release function (idempotent), or undefined when none is left. */
  take(ip: string): (() => void) | undefined {
    const count = this.counts.get(ip) ?? 0;
    if (count >= this.max) return undefined;
    this.counts.set(ip, count + 1);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      clearTimeout(timer);
      const left = (this.counts.get(ip) ?? 1) - 1;
      if (left > 0) this.counts.set(ip, left);
      else this.counts.delete(ip);
    };
    const timer = setTimeout(release, this.holdMs);
    return release;
  }
}
