import type { StreamTextTransform, TextStreamPart, ToolSet } from "ai";
import type { Surface } from "../model";

export interface SurfaceFormat {
  /** Upper bound on what the model may generate for one step. */
  maxOutputTokens: number;
  /** Characters of reply text shown at most; the rest is dropped and an ellipsis marks the cut. */
  maxChars?: number;
  /** Plain text only: markdown headings and emphasis markers are removed. */
  plain: boolean;
}

export const SURFACE_FORMATS: Record<Surface, SurfaceFormat> = {
  home: { maxOutputTokens: 2048, plain: false },
  floating: { maxOutputTokens: 320, maxChars: 700, plain: true },
};

/**
 * The output formatter: shapes reply text for the surface while it streams, so what the device
 * shows and what is stored are the same. Tool parts pass untouched (the device renders them as
 * structured chunks).
 */
export function formatForSurface<TOOLS extends ToolSet>(surface: Surface): StreamTextTransform<TOOLS> {
  const format = SURFACE_FORMATS[surface];
  return () => {
    let shown = 0;
    let cut = false;
    let atLineStart = true;
    return new TransformStream<TextStreamPart<TOOLS>, TextStreamPart<TOOLS>>({
      transform(part, controller) {
        if (part.type !== "text-delta") {
          controller.enqueue(part);
          return;
        }
        if (cut) return;
        let text = part.text;
        if (format.plain) {
          text = text.replace(/\*\*|__/g, "");
          if (atLineStart) text = text.replace(/^#{1,6}\s+/, "");
          text = text.replace(/\n#{1,6}\s+/g, "\n");
        }
        if (text.length > 0) atLineStart = text.endsWith("\n");
        if (format.maxChars !== undefined && shown + text.length > format.maxChars) {
          text = `${text.slice(0, Math.max(0, format.maxChars - shown)).trimEnd()}…`;
          cut = true;
        }
        shown += text.length;
        if (text.length > 0) controller.enqueue({ ...part, text });
      },
    });
  };
}
