// Reading a failed call the way protos/README.md ("Error details") describes it: every Zoptal
// error carries a google.rpc.Status in the `grpc-status-details-bin` trailer, whose details say
// what went wrong as data (never parse the message text).
import { grpc } from './zoptal.mjs';

const TYPE_PREFIX = 'type.googleapis.com/google.rpc.';

/**
 * What a client branches on, from grpc-js's ServiceError:
 * `code` (the status name), `reason`/`domain`/`metadata` (google.rpc.ErrorInfo),
 * `fieldViolations` [{field, description}] (google.rpc.BadRequest),
 * `resource` {type, name} (google.rpc.ResourceInfo), `retryDelaySeconds` (google.rpc.RetryInfo)
 * and `retryAfter` (the `retry-after` trailer, whole seconds). A status without details (a
 * proxy's, or the client's own DEADLINE_EXCEEDED) gives the code alone.
 */
export function statusDetails(api, error) {
  const found = {
    code: grpc.status[error.code] ?? String(error.code),
    message: error.details,
    reason: '',
    domain: '',
    metadata: {},
    fieldViolations: [],
    resource: null,
    retryDelaySeconds: null,
    retryAfter: null,
  };
  const trailers = error.metadata;
  if (!trailers) return found;
  const [retryAfter] = trailers.get('retry-after');
  if (retryAfter !== undefined) found.retryAfter = Number(retryAfter);
  const [serialized] = trailers.get('grpc-status-details-bin');
  if (!Buffer.isBuffer(serialized)) return found;
  let status;
  try {
    status = api['google.rpc.Status'].deserialize(serialized);
  } catch {
    return found; // a client must never fail on what a server added
  }
  for (const detail of status.details) {
    switch (detail['@type']) {
      case `${TYPE_PREFIX}ErrorInfo`:
        found.reason = detail.reason;
        found.domain = detail.domain;
        found.metadata = detail.metadata;
        break;
      case `${TYPE_PREFIX}BadRequest`:
        found.fieldViolations = detail.field_violations.map(({ field, description }) => ({
          field,
          description,
        }));
        break;
      case `${TYPE_PREFIX}ResourceInfo`:
        found.resource = { type: detail.resource_type, name: detail.resource_name };
        break;
      case `${TYPE_PREFIX}RetryInfo`:
        if (detail.retry_delay) {
          found.retryDelaySeconds =
            Number(detail.retry_delay.seconds) + detail.retry_delay.nanos / 1e9;
        }
        break;
      default: // a detail this client does not know: skipped, as the richer error model says
    }
  }
  return found;
}

/** One line for the transcript. */
export function describeStatus(details) {
  const parts = [details.code];
  if (details.reason) parts.push(`reason=${details.reason}`);
  if (details.domain) parts.push(`domain=${details.domain}`);
  for (const { field, description } of details.fieldViolations) {
    parts.push(`violation ${field}: ${description}`);
  }
  if (details.resource) parts.push(`resource=${details.resource.type}/${details.resource.name}`);
  if (details.retryDelaySeconds !== null) parts.push(`retry_delay=${details.retryDelaySeconds}s`);
  if (details.retryAfter !== null) parts.push(`retry-after=${details.retryAfter}`);
  return parts.join(' ');
}
