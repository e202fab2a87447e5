// A Zoptal client built from protos/ alone: @grpc/proto-loader reads the .proto files at start,
// @grpc/grpc-js makes the calls. No generated code, no Python. docs/clients.md explains each
// choice below for any language.
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const HERE = dirname(fileURLToPath(import.meta.url));

// The repository's protos/ (ZOPTAL_PROTOS_DIR elsewhere) and the two google.rpc protos the error
// details need, vendored unchanged under third_party/ (Apache-2.0). google/protobuf/*.proto
// (Timestamp, Duration, Any) come with proto-loader.
const PROTOS_DIR = resolve(process.env.ZOPTAL_PROTOS_DIR || join(HERE, '..', '..', 'protos'));
const GOOGLEAPIS_DIR = join(HERE, 'third_party', 'googleapis');

// Where the services listen: the same <SVC>_ADDR variables the services and the Python examples
// read, defaulting to `make run`'s ports.
const DEFAULT_ADDRESSES = {
  auth: '127.0.0.1:4000',
  project: '127.0.0.1:4001',
  billing: '127.0.0.1:4003',
  notification: '127.0.0.1:4004',
  analytics: '127.0.0.1:4005',
};

export const CALL_TIMEOUT_MS = 15_000;

// keepCase: field names exactly as in the .proto (`request_id`, `page_size`), which is also how
// google.rpc.BadRequest names an invalid field, so a violation maps straight onto the request.
// longs: String, because int64 values (versions, counts, usage, Timestamp seconds) may exceed
// 2^53; a request accepts a string, a number or a BigInt's string form.
// enums: String, the value names (`PROJECT_ROLE_EDITOR`), as written in the protos.
// defaults: unset proto3 fields read as their zero value ('' / '0' / false / the _UNSPECIFIED
// name), as in every other proto3 runtime; messages that are not set stay null.
// json: google.protobuf.Any values (the details of google.rpc.Status) come decoded, tagged with
// their `@type`.
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  json: true,
  includeDirs: [PROTOS_DIR, GOOGLEAPIS_DIR],
};

/** Every zoptal/<svc>/v1/<svc>.proto, plus google.rpc.Status and its details, in one root. */
export function loadApi() {
  const files = readdirSync(join(PROTOS_DIR, 'zoptal')).map(
    (svc) => `zoptal/${svc}/v1/${svc}.proto`,
  );
  files.push('google/rpc/status.proto', 'google/rpc/error_details.proto');
  return protoLoader.loadSync(files, LOADER_OPTIONS);
}

/** `<SVC>_ADDR`, or make run's port. A comma-separated list of replicas: the first one (grpc-js
 * balances over replicas behind one DNS name with `dns:` targets and round_robin). */
export function address(service) {
  const configured = process.env[`${service.toUpperCase()}_ADDR`] || DEFAULT_ADDRESSES[service];
  return configured.split(',')[0].trim();
}

/**
 * A gRPC service config that lets grpc-js retry, on UNAVAILABLE only, the RPCs the protos mark
 * safe to repeat (`option idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT`): read from the
 * loaded protos, never from a hand-kept list. Everything else fails to the caller, who decides
 * (CreateProject is safe to repeat only with the same request_id, which the caller owns).
 */
export function retryServiceConfig(serviceDefinition, serviceName) {
  const safe = Object.entries(serviceDefinition)
    .filter(([, method]) =>
      ['NO_SIDE_EFFECTS', 'IDEMPOTENT'].includes(method.options?.idempotency_level),
    )
    .map(([name]) => ({ service: serviceName, method: name }));
  if (safe.length === 0) return {};
  return {
    methodConfig: [
      {
        name: safe,
        retryPolicy: {
          maxAttempts: 3,
          initialBackoff: '0.2s',
          maxBackoff: '2s',
          backoffMultiplier: 2,
          retryableStatusCodes: ['UNAVAILABLE'],
        },
      },
    ],
  };
}

/** A client of `zoptal.<service>.v1.<Service>Service` on a plaintext channel (make run; use
 * grpc.credentials.createSsl(...) towards a TLS endpoint). */
export function connect(api, service) {
  const serviceName = `zoptal.${service}.v1.${service[0].toUpperCase()}${service.slice(1)}Service`;
  const definition = api[serviceName];
  if (!definition) throw new Error(`${serviceName} is not in ${PROTOS_DIR}`);
  const Client = grpc.makeGenericClientConstructor(definition, serviceName);
  return new Client(address(service), grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(retryServiceConfig(definition, serviceName)),
  });
}

/**
 * Call metadata. `token`: a user's access token (`authorization: Bearer`). `serviceToken`: a
 * service account's token (`x-service-token`), for operators' tools and services only.
 * Every call also gets an `x-request-id` (the servers log it and pass it on to the services they
 * call) and a W3C `traceparent` in `trace` (one trace id for a whole journey, a new span id per
 * call), so the call shows up in the platform's traces.
 */
export function callMetadata({ token, serviceToken, trace } = {}) {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  if (serviceToken) metadata.set('x-service-token', serviceToken);
  metadata.set('x-request-id', randomUUID());
  if (trace) metadata.set('traceparent', `00-${trace}-${randomBytes(8).toString('hex')}-01`);
  return metadata;
}

/** A new W3C trace id (32 hex digits). */
export function newTraceId() {
  return randomBytes(16).toString('hex');
}

/** One unary call as a promise, with a deadline. Rejects with grpc-js's ServiceError, whose
 * `metadata` holds the trailers (`grpc-status-details-bin`, `retry-after`). */
export function unary(client, method, request, credentials = {}, timeoutMs = CALL_TIMEOUT_MS) {
  if (typeof client[method] !== 'function') throw new Error(`no RPC ${method}`);
  return new Promise((resolvePromise, reject) => {
    client[method](
      request,
      callMetadata(credentials),
      { deadline: new Date(Date.now() + timeoutMs) },
      (error, response) => (error ? reject(error) : resolvePromise(response)),
    );
  });
}

/** A google.protobuf.Timestamp for a JS Date (`seconds` is an int64: a string). */
export function timestamp(date) {
  const ms = date.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

/** The Date of a google.protobuf.Timestamp as proto-loader returns it (null when unset).
 * Millisecond precision: a JS Date has no more. */
export function toDate(ts) {
  if (!ts) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000));
}

export { grpc };
