import { z } from "zod";
import { named } from "../shared/contract";

/** Up to S3's largest object; the tier's `maxObjectBytes` is the real ceiling. */
const MAX_DECLARED_BYTES = 5 * 1024 ** 4;

const Size = z.number().int().min(0).max(MAX_DECLARED_BYTES);
const Sha256 = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, "must be the hex SHA-256 of the content")
  .transform((value) => value.toLowerCase());
const isUnsafeInName = (char: string) => {
  const code = char.charCodeAt(0);
  return code < 0x20 || code === 0x7f || char === "/" || char === "\\";
};

/** Shown to people and sent back in Content-Disposition: printable, no path. */
const FileName = z
  .string()
  .trim()
  .min(1)
  .max(255)
  .refine((value) => ![...value].some(isUnsafeInName), "must not contain control characters or slashes");
const ContentType = z
  .string()
  .max(255)
  .regex(/^[\w.+-]+\/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+-]+)*$/, "must be a media type such as text/plain");
const Uuid = z.uuid();

export const CreateUploadInput = z
  .object({
    name: FileName,
    size: Size,
    sha256: Sha256,
    content_type: ContentType.default("application/octet-stream"),
  })
  .strict();
export type CreateUploadInput = z.infer<typeof CreateUploadInput>;

export const CreateBackupInput = z
  .object({
    device_id: z.string().trim().min(1).max(128),
    /** When the device made the backup (its local time, with offset); retention counts days by it. */
    created_at: z.iso.datetime({ offset: true }),
    size: Size,
    sha256: Sha256,
    /** The version of the SDK's encryption header the blob starts with (`encryptBackup`). */
    header_version: z.number().int().min(1).max(255),
  })
  .strict();
export type CreateBackupInput = z.infer<typeof CreateBackupInput>;

export const SignedUrl = z.object({
  url: z.string(),
  method: z.enum(["GET", "PUT"]),
  /** Headers the request must carry as given. */
  headers: z.record(z.string(), z.string()),
});
export type SignedUrl = z.infer<typeof SignedUrl>;

export const Upload = z.object({
  /** The upload's id, also the id of the object it makes. */
  upload_id: Uuid,
  kind: z.enum(["file", "backup"]),
  /** `single`: one PUT on `url`; `multipart`: ask for part URLs, PUT each part, then complete. */
  mode: z.enum(["single", "multipart"]),
  size: z.number().int(),
  part_size: z.number().int(),
  part_count: z.number().int(),
  /** The upload is aborted (and its reservation released) if not completed by then. */
  expires_at: z.string(),
  /** Single mode only. */
  url: SignedUrl.optional(),
});
export type Upload = z.infer<typeof Upload>;

export const UploadParams = z.object({ id: Uuid }).strict();
export type UploadParams = z.infer<typeof UploadParams>;

export const PartUrlsInput = z
  .object({
    part_numbers: z
      .array(z.number().int().min(1).max(10_000))
      .min(1)
      .max(100)
      .refine((numbers) => new Set(numbers).size === numbers.length, "part numbers must be distinct"),
  })
  .strict();
export type PartUrlsInput = z.infer<typeof PartUrlsInput>;

export const PartUrls = z.object({
  parts: z.array(SignedUrl.extend({ part_number: z.number().int() })),
  expires_at: z.string(),
});
export type PartUrls = z.infer<typeof PartUrls>;

export const UploadedPart = z.object({ part_number: z.number().int(), size: z.number().int(), etag: z.string() });

export const UploadStatus = z.object({
  upload_id: Uuid,
  status: z.enum(["uploading", "ready"]),
  mode: z.enum(["single", "multipart"]),
  size: z.number().int(),
  part_size: z.number().int(),
  part_count: z.number().int(),
  /** Multipart: the parts that arrived (the store's ListParts); a resumed client sends the others. */
  parts: z.array(UploadedPart),
  missing: z.array(z.number().int()),
  expires_at: z.string(),
});
export type UploadStatus = z.infer<typeof UploadStatus>;

export const CompleteInput = z
  .object({
    /** The ETags the part PUTs answered; without them the service reads them from the store. */
    parts: z
      .array(z.object({ part_number: z.number().int().min(1).max(10_000), etag: z.string().min(1).max(128) }).strict())
      .max(10_000)
      .optional(),
  })
  .strict();
export type CompleteInput = z.infer<typeof CompleteInput>;

export const BackupInfo = z.object({
  device_id: z.string(),
  created_at: z.string(),
  header_version: z.number().int(),
});

export const StoredObject = z.object({
  id: Uuid,
  kind: z.enum(["file", "backup"]),
  name: z.string(),
  content_type: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  created_at: z.string(),
  completed_at: z.string().nullable(),
  indexed: z.boolean(),
  backup: BackupInfo.optional(),
});
export type StoredObject = z.infer<typeof StoredObject>;

export const ObjectList = z.object({ items: z.array(StoredObject), next_cursor: z.string().nullable() });
export type ObjectList = z.infer<typeof ObjectList>;

export const ListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().max(200).optional(),
  })
  .strict();
export type ListQuery = z.infer<typeof ListQuery>;

export const BackupListQuery = ListQuery.extend({ device_id: z.string().trim().min(1).max(128).optional() }).strict();
export type BackupListQuery = z.infer<typeof BackupListQuery>;

export const DownloadQuery = z
  .object({
    /** `false`: answer `{ url, expires_at }` instead of a 302 to the URL. */
    redirect: z.enum(["true", "false"]).default("true"),
  })
  .strict();
export type DownloadQuery = z.infer<typeof DownloadQuery>;

export const DownloadUrl = z.object({ url: z.string(), expires_at: z.string() });
export type DownloadUrl = z.infer<typeof DownloadUrl>;

export const IndexResult = z.object({ object_id: Uuid, chunks: z.number().int() });
export type IndexResult = z.infer<typeof IndexResult>;

export const SearchInput = z
  .object({
    query: z.string().trim().min(1).max(2000),
    limit: z.number().int().min(1).max(20).default(5),
  })
  .strict();
export type SearchInput = z.infer<typeof SearchInput>;

export const SearchHit = z.object({ object_id: Uuid, name: z.string(), score: z.number(), text: z.string() });
export const SearchResult = z.object({ results: z.array(SearchHit) });
export type SearchResult = z.infer<typeof SearchResult>;

// Wire names of the models.
named("CreateUploadInput", CreateUploadInput);
named("CreateBackupInput", CreateBackupInput);
named("SignedUrl", SignedUrl);
named("Upload", Upload);
named("PartUrlsInput", PartUrlsInput);
named("PartUrls", PartUrls);
named("UploadStatus", UploadStatus);
named("CompleteUploadInput", CompleteInput);
named("StoredObject", StoredObject);
named("ObjectList", ObjectList);
named("DownloadUrl", DownloadUrl);
named("IndexResult", IndexResult);
named("DocumentSearchInput", SearchInput);
named("DocumentSearchResult", SearchResult);
