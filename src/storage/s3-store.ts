import {
  AbortMultipartUploadCommand,
  S3Client as AwsS3Client,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  type Part,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { attachment, type CompletedPart, type ObjectStore, type SignedRequest, type StoredPart } from "./object-store";

export interface S3StoreOptions {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  partSize: number;
}

/**
 * An S3-compatible bucket. Bun's own client (`Bun.S3Client`) presigns the single PUT and the GET,
 * reads, sizes and deletes objects; it has no call for multipart uploads a client performs
 * (CreateMultipartUpload, a presigned UploadPart URL with its uploadId and partNumber, ListParts,
 * CompleteMultipartUpload, AbortMultipartUpload): its `writer()` runs a multipart upload from this
 * process only. Those five go through the AWS SDK's client and presigner.
 */
export class S3ObjectStore implements ObjectStore {
  readonly kind = "s3";
  readonly partSize: number;
  private readonly bun: Bun.S3Client;
  private readonly aws: AwsS3Client;
  private readonly bucket: string;

  constructor(options: S3StoreOptions) {
    this.partSize = options.partSize;
    this.bucket = options.bucket;
    const credentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
    this.bun = new Bun.S3Client({
      ...credentials,
      endpoint: options.endpoint,
      bucket: options.bucket,
      region: options.region,
    });
    this.aws = new AwsS3Client({
      endpoint: options.endpoint,
      region: options.region,
      credentials,
      // Path-style works on every S3-compatible server; virtual hosts need DNS per bucket.
      forcePathStyle: true,
    });
  }

  async presignPut(key: string, options: { contentType: string; expiresIn: number }): Promise<SignedRequest> {
    const url = this.bun.presign(key, { method: "PUT", expiresIn: options.expiresIn });
    return { url, method: "PUT", headers: {} };
  }

  async presignGet(
    key: string,
    options: { expiresIn: number; filename: string; contentType: string },
  ): Promise<SignedRequest> {
    const url = this.bun.presign(key, {
      method: "GET",
      expiresIn: options.expiresIn,
      contentDisposition: attachment(options.filename),
      type: options.contentType,
    });
    return { url, method: "GET", headers: {} };
  }

  async createMultipart(key: string, contentType: string): Promise<string> {
    const created = await this.aws.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: contentType }),
    );
    if (!created.UploadId) throw new Error("S3 returned no UploadId");
    return created.UploadId;
  }

  async presignPart(
    key: string,
    uploadId: string,
    partNumber: number,
    options: { expiresIn: number },
  ): Promise<SignedRequest> {
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: key,
      UploadId: uploadId,
      PartNumber: partNumber,
    });
    const url = await getSignedUrl(this.aws, command, { expiresIn: options.expiresIn });
    return { url, method: "PUT", headers: {} };
  }

  async listParts(key: string, uploadId: string): Promise<StoredPart[]> {
    const parts: Part[] = [];
    let marker: string | undefined;
    do {
      const page = await this.aws.send(
        new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
      );
      parts.push(...(page.Parts ?? []));
      marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
    } while (marker);
    return parts
      .map((part) => ({ partNumber: part.PartNumber ?? 0, size: part.Size ?? 0, etag: part.ETag ?? "" }))
      .sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.aws.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: part.etag })) },
      }),
    );
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    await this.aws.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
  }

  async size(key: string): Promise<number | undefined> {
    const file = this.bun.file(key);
    if (!(await file.exists())) return undefined;
    return (await file.stat()).size;
  }

  read(key: string): ReadableStream<Uint8Array> {
    return this.bun.file(key).stream();
  }

  async delete(key: string): Promise<void> {
    await this.bun.delete(key);
  }
}
