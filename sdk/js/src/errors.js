// Typed errors of the cocoon SDK: one class per error code of the REST API's envelope
// ({"error": {"message", "type", "code"}}, docs/openapi.yaml), so callers can catch
// NotFoundError rather than compare strings. Every class extends CocoonError.

export class CocoonError extends Error {
  constructor(message, { code = 'internal', status = 0, type = '', cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.type = type;
  }
}

export class InvalidArgumentError extends CocoonError {}
export class AuthError extends CocoonError {}
export class PermissionDeniedError extends CocoonError {}
export class NotFoundError extends CocoonError {}
export class MethodNotAllowedError extends CocoonError {}
export class AlreadyExistsError extends CocoonError {}
export class InvalidStateError extends CocoonError {}
export class UnsupportedError extends CocoonError {}
export class ImagePullError extends CocoonError {}
export class ExecutionError extends CocoonError {}
export class BootFailedError extends CocoonError {}
export class ResourceExhaustedError extends CocoonError {}
export class StorageError extends CocoonError {}
export class InternalError extends CocoonError {}
export class TimeoutError extends CocoonError {}
/** The box runs and the call needs it stopped (snapshot, restore, export). */
export class BoxRunningError extends InvalidStateError {}
/** A snapshot a box or another snapshot stands on cannot be removed. */
export class SnapshotInUseError extends InvalidStateError {}
/** No snapshot with that id, name or id prefix (among the box's, for a box's call). */
export class SnapshotNotFoundError extends NotFoundError {}
/** The server could not be reached, started, or it broke the protocol. */
export class ConnectionError extends CocoonError {}

const BY_CODE = {
  invalid_argument: InvalidArgumentError,
  unauthenticated: AuthError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  method_not_allowed: MethodNotAllowedError,
  already_exists: AlreadyExistsError,
  invalid_state: InvalidStateError,
  unsupported: UnsupportedError,
  image_pull_failed: ImagePullError,
  execution_failed: ExecutionError,
  boot_failed: BootFailedError,
  resource_exhausted: ResourceExhaustedError,
  storage_error: StorageError,
  internal: InternalError,
  timeout: TimeoutError,
};

/** The error class of a code (CocoonError for a code this SDK does not know). */
export function errorClass(code) {
  return BY_CODE[code] || CocoonError;
}

/** The narrower class a message names (the server says these refusals in words). */
function refined(Cls, message) {
  if (Cls === InvalidStateError) {
    if (/^snapshot .* is in use by /.test(message)) return SnapshotInUseError;
    if (/^box \S.*\bis running\b/.test(message)) return BoxRunningError;
  }
  if (Cls === NotFoundError && /\bno snapshot\b/.test(message)) return SnapshotNotFoundError;
  return Cls;
}

/** An error from an envelope's fields (a status without an envelope counts as internal). */
export function makeError(status, envelope, fallback) {
  const e = envelope && typeof envelope === 'object' ? envelope : {};
  const code = typeof e.code === 'string' ? e.code : status === 404 ? 'not_found' : 'internal';
  const message = typeof e.message === 'string' && e.message ? e.message : fallback || `HTTP ${status}`;
  const Cls = refined(errorClass(code), message);
  return new Cls(message, { code, status, type: typeof e.type === 'string' ? e.type : '' });
}
