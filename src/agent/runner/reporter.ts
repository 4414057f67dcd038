import { eq } from "drizzle-orm";
import type { AgentContext } from "../context";
import { agentRunEvents, agentRunLogs } from "../tables";

type RunRow = typeof agentRunLogs.$inferSelect;

const snapshot = (row: RunRow) => ({
  status: row.status,
  device_id: row.deviceId,
  error: row.errorCode ? { code: row.errorCode, message: row.errorMessage ?? "" } : null,
  progress: { total: row.itemsTotal, done: row.itemsDone, failed: row.itemsFailed, skipped: row.itemsSkipped },
  counts: {
    tasks: row.tasksCreated,
    projects: row.projectsCreated,
    notes: row.notesCreated,
    events: row.eventsCreated,
  },
});

/**
 * Stores a run's log and tells the user's devices how it goes (`agent_event` frames). Progress is
 * sent from a periodic look at the run row, not per item, so a fast run does not flood the socket.
 */
export class RunReporter {
  private lastProgress = "";

  constructor(
    private readonly ctx: Pick<AgentContext, "db" | "push" | "logger">,
    readonly runId: string,
    private readonly userId: string,
  ) {}

  async log(level: "info" | "warn" | "error", message: string, item?: string): Promise<void> {
    await this.ctx.db.insert(agentRunEvents).values({ runId: this.runId, level, message, item });
  }

  /** A lifecycle event (started, paused, resumed, finished...) with the run's current figures. */
  async event(event: string, extra: Record<string, unknown> = {}): Promise<void> {
    const row = await this.row();
    if (row) await this.send({ event, ...snapshot(row), ...extra });
  }

  /** Sends progress when it changed since the last frame; returns the row it read. */
  async tick(): Promise<RunRow | undefined> {
    const row = await this.row();
    if (!row) return undefined;
    const figures = snapshot(row);
    const key = JSON.stringify(figures);
    if (key !== this.lastProgress) {
      this.lastProgress = key;
      await this.send({ event: "progress", ...figures });
    }
    return row;
  }

  private async row(): Promise<RunRow | undefined> {
    const [row] = await this.ctx.db.select().from(agentRunLogs).where(eq(agentRunLogs.id, this.runId));
    return row;
  }

  private async send(payload: Record<string, unknown>): Promise<void> {
    try {
      await this.ctx.push.push(this.userId, { type: "agent_event", run_id: this.runId, ...payload });
    } catch (error) {
      // The device may be gone; the stored run is the source of truth.
      this.ctx.logger.debug({ err: error, run_id: this.runId }, "agent_event not delivered");
    }
  }
}
