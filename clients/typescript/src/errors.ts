// The one error type of the client, and the codes it picks itself.

import { Metadata, type ServiceError, status } from "@grpc/grpc-js";

/**
 * A failed call. `code` is the gRPC status code: the daemon's, or one this
 * client chose for a failure it detected itself (INVALID_ARGUMENT for a bad
 * file name, FAILED_PRECONDITION for an output directory it will not write
 * into, DATA_LOSS for pulled bytes that do not match their digest or size,
 * INTERNAL for a malformed stream, DEADLINE_EXCEEDED for a call past its
 * deadline...).
 */
export class SatchelError extends Error {
  readonly code: status;
  readonly details: string;
  readonly metadata?: Metadata;

  constructor(code: status, details: string, options?: { cause?: unknown; metadata?: Metadata }) {
    super(`${status[code] ?? code}: ${details}`, { cause: options?.cause });
    this.name = "SatchelError";
    this.code = code;
    this.details = details;
    this.metadata = options?.metadata;
  }

  /** Wraps a grpc-js ServiceError (or anything else thrown) as a SatchelError. */
  static from(err: unknown): SatchelError {
    if (err instanceof SatchelError) return err;
    if (isServiceError(err)) {
      return new SatchelError(err.code, err.details, { cause: err, metadata: err.metadata });
    }
    const message = err instanceof Error ? err.message : String(err);
    const code = isNodeError(err) && err.code === "ENOENT" ? status.NOT_FOUND : status.UNKNOWN;
    return new SatchelError(code, message, { cause: err });
  }

  /**
   * Like from(), for the error of a call with a deadline (ms since the
   * epoch). satcheld (tonic) ends a call whose deadline it saw pass with
   * CANCELLED "Timeout expired", often just before grpc-js's own timer
   * fires: that is the deadline, not a cancel.
   */
  static fromCall(err: unknown, deadline: number | undefined): SatchelError {
    const e = SatchelError.from(err);
    const expired = deadline !== undefined && (e.details === "Timeout expired" || Date.now() >= deadline);
    if (e.code !== status.CANCELLED || !expired) return e;
    return new SatchelError(status.DEADLINE_EXCEEDED, e.details, { cause: e.cause, metadata: e.metadata });
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as ServiceError).code === "number" && "details" in err;
}

export function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string";
}

/**
 * A local file the caller named to push or attach that cannot be read as
 * one: INVALID_ARGUMENT naming the path when it is missing or not a
 * regular file (the caller's argument, never NOT_FOUND, which means a
 * manifest, blob or repository the registry lacks); other errors as from().
 * Node's own error stays reachable as the cause.
 */
export function localFileError(file: string, err: unknown): SatchelError {
  if (err instanceof SatchelError) return err;
  if (isNodeError(err) && (err.code === "ENOENT" || err.code === "ENOTDIR")) {
    return new SatchelError(status.INVALID_ARGUMENT, `no such file to push: ${file}`, { cause: err });
  }
  return SatchelError.from(err);
}

/** A stream that does not follow the API: the daemon's or the wire's fault. */
export function malformed(message: string): SatchelError {
  return new SatchelError(status.INTERNAL, message);
}
