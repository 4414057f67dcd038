/**
 * A .tar.gz of a few in-memory files: POSIX ustar records compressed with Bun's gzip. Written here
 * rather than taken from a package because an export needs only flat, regular files, which is fifty
 * lines; `tar -xzf` and the usual archive tools read it.
 */
export interface ArchiveFile {
  /** A flat name (at most 100 bytes, no directories). */
  name: string;
  content: string | Uint8Array;
}

const BLOCK = 512;
const encoder = new TextEncoder();

export function tarGz(files: ArchiveFile[], modified = new Date()): Uint8Array {
  const records: Uint8Array[] = [];
  const mtime = Math.floor(modified.getTime() / 1000);
  for (const file of files) {
    const body = typeof file.content === "string" ? encoder.encode(file.content) : file.content;
    records.push(header(file.name, body.length, mtime), body, new Uint8Array(padding(body.length)));
  }
  records.push(new Uint8Array(BLOCK * 2)); // two empty blocks end the archive
  return Bun.gzipSync(concat(records));
}

function header(name: string, size: number, mtime: number): Uint8Array {
  const block = new Uint8Array(BLOCK);
  const put = (offset: number, length: number, value: string) => {
    const bytes = encoder.encode(value);
    if (bytes.length > length) throw new Error(`tar field too long: ${value}`);
    block.set(bytes, offset);
  };
  const octal = (value: number, length: number) => `${value.toString(8).padStart(length - 1, "0")}\0`;
  put(0, 100, name);
  put(100, 8, octal(0o644, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(size, 12));
  put(136, 12, octal(mtime, 12));
  put(148, 8, "        "); // the checksum counts its own field as spaces
  put(156, 1, "0");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  const checksum = block.reduce((sum, byte) => sum + byte, 0);
  put(148, 8, `${checksum.toString(8).padStart(6, "0")}\0 `);
  return block;
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
