/**
 * The pause between two passes of a relay loop (an outbox published to a stream). `wake()` means
 * new work was committed: it cuts the pause running now short, or, when a pass is running, makes
 * the next pause return at once, so a commit made during a pass is not left to the next poll. A
 * pause that is a backoff after a failure is not skipped that way (only cut by a wake while it
 * runs, as any pause is). `interrupt()` ends the pause running now: the loop is stopping.
 */
export class RelayPause {
  private cut?: () => void;
  private woken = false;

  wait(ms: number, backingOff: boolean): Promise<void> {
    if (this.woken && !backingOff) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.cut = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.cut = done;
    });
  }

  wake(): void {
    this.woken = true;
    this.cut?.();
  }

  interrupt(): void {
    this.cut?.();
  }
}
