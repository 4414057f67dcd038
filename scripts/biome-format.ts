import { join } from "node:path";

/** `text` as the repository's formatter lays out a file at `path` (its extension picks the language). */
export async function biomeFormat(text: string, path: string): Promise<string> {
  const biome = Bun.spawn(
    [join(import.meta.dir, "..", "node_modules", ".bin", "biome"), "format", `--stdin-file-path=${path}`],
    { stdin: new Blob([text]), stdout: "pipe", stderr: "pipe" },
  );
  const [formatted, errors, code] = await Promise.all([
    new Response(biome.stdout).text(),
    new Response(biome.stderr).text(),
    biome.exited,
  ]);
  if (code !== 0) throw new Error(`biome format failed: ${errors}`);
  return formatted;
}
