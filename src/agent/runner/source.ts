import type { DeviceRpc } from "../../shared/device-rpc";
import { FileContent, ListPage } from "../../shared/device-tools";
import { DocumentsConfig, FilesystemConfig } from "../registry";
import type { ItemText } from "./extract";

export interface SourceItem {
  item: string;
  size: number;
}

/** Where a run's items come from and how one is read; one per agent kind. */
export interface Source {
  /** Scope of the idempotency keys. */
  scope: string;
  list(signal: AbortSignal): Promise<SourceItem[]>;
  /** The item's text, or null when it is not text (skipped, not failed). */
  read(item: string, signal: AbortSignal): Promise<ItemText | null>;
}

/** A listing that never ends (a device returning the same cursor forever) stops here. */
const MAX_PAGES = 1000;

export class InvalidDeviceReply extends Error {
  override name = "InvalidDeviceReply";
}

export interface DeviceAccess {
  rpc: DeviceRpc;
  userId: string;
  origin: string;
  deadlineMs: number;
}

/** The filesystem agent's source: `fs_list_dir` pages, then `fs_read_file` with a byte cap. */
export function directorySource(device: DeviceAccess, raw: unknown): Source {
  const config = FilesystemConfig.parse(raw);
  const call = (name: string, args: Record<string, unknown>, signal: AbortSignal) =>
    device.rpc.call({
      userId: device.userId,
      name,
      args,
      deadlineMs: device.deadlineMs,
      signal,
      origin: device.origin,
    });
  const wanted = (path: string) =>
    config.extensions.length === 0 || config.extensions.some((extension) => path.toLowerCase().endsWith(extension));
  return {
    scope: `dir:${config.path}`,
    async list(signal) {
      const items: SourceItem[] = [];
      const seen = new Set<string>();
      let cursor: string | undefined;
      for (let page = 0; page < MAX_PAGES && items.length < config.max_files; page++) {
        const reply = ListPage.safeParse(
          await call("fs_list_dir", { path: config.path, recursive: config.recursive, cursor }, signal),
        );
        if (!reply.success) throw new InvalidDeviceReply("the device returned a malformed directory listing");
        for (const entry of reply.data.entries) {
          if (entry.type !== "file" || !wanted(entry.path) || seen.has(entry.path)) continue;
          seen.add(entry.path);
          items.push({ item: entry.path, size: Math.min(entry.size ?? 0, 2 ** 31 - 1) });
          if (items.length >= config.max_files) break;
        }
        cursor = reply.data.next_cursor ?? undefined;
        if (!cursor) break;
      }
      return items;
    },
    async read(item, signal) {
      const reply = FileContent.safeParse(
        await call("fs_read_file", { path: item, max_bytes: config.max_file_bytes }, signal),
      );
      if (!reply.success) throw new InvalidDeviceReply("the device returned a malformed file");
      if (reply.data.encoding !== "utf8") return null;
      // A device that ignores max_bytes still cannot make us send a huge prompt.
      const content = reply.data.content.slice(0, config.max_file_bytes);
      return {
        name: item,
        content,
        truncated: reply.data.truncated || content.length < reply.data.content.length,
      };
    },
  };
}

/** A cloud batch agent's source: the documents in its configuration. */
export function documentsSource(configId: string, raw: unknown): Source {
  const { documents } = DocumentsConfig.parse(raw);
  return {
    scope: `config:${configId}`,
    async list() {
      return documents.map((document, index) => ({ item: `doc:${index}`, size: document.text.length }));
    },
    async read(item) {
      const document = documents[Number(item.slice(4))];
      return document ? { name: document.title, content: document.text, truncated: false } : null;
    },
  };
}
