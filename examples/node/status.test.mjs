// `node --test status.test.mjs`: statusDetails on trailers made here, without a server.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeStatus, statusDetails } from './status.mjs';
import { grpc, loadApi } from './zoptal.mjs';

const api = loadApi();
const RPC = 'type.googleapis.com/google.rpc.';

function failedCall(code, trailers) {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(trailers)) metadata.set(key, value);
  return { code, details: 'message text', metadata };
}

function statusBytes(details) {
  return api['google.rpc.Status'].serialize({ code: 3, message: 'message text', details });
}

test('every detail Zoptal sends is read', () => {
  const bytes = statusBytes([
    {
      '@type': `${RPC}ErrorInfo`,
      reason: 'RATE_LIMITED',
      domain: 'zoptal.billing.v1',
      metadata: { k: 'v' },
    },
    {
      '@type': `${RPC}BadRequest`,
      field_violations: [{ field: 'events[3].name', description: 'is required' }],
    },
    { '@type': `${RPC}ResourceInfo`, resource_type: 'project', resource_name: 'p-1' },
    { '@type': `${RPC}RetryInfo`, retry_delay: { seconds: '2', nanos: 500_000_000 } },
  ]);
  const found = statusDetails(
    api,
    failedCall(grpc.status.RESOURCE_EXHAUSTED, {
      'grpc-status-details-bin': bytes,
      'retry-after': '3',
    }),
  );
  assert.equal(found.code, 'RESOURCE_EXHAUSTED');
  assert.equal(found.reason, 'RATE_LIMITED');
  assert.equal(found.domain, 'zoptal.billing.v1');
  assert.deepEqual(found.metadata, { k: 'v' });
  assert.deepEqual(found.fieldViolations, [
    { field: 'events[3].name', description: 'is required' },
  ]);
  assert.deepEqual(found.resource, { type: 'project', name: 'p-1' });
  assert.equal(found.retryDelaySeconds, 2.5);
  assert.equal(found.retryAfter, 3);
  assert.match(
    describeStatus(found),
    /^RESOURCE_EXHAUSTED reason=RATE_LIMITED .*violation events\[3\]\.name: is required/,
  );
});

test('an unknown detail type is skipped, the known ones still read', () => {
  const bytes = statusBytes([
    { type_url: 'type.googleapis.com/example.Unknown', value: Buffer.from([8, 1]) },
    { '@type': `${RPC}ErrorInfo`, reason: 'INVALID_ARGUMENT', domain: 'zoptal.project.v1' },
  ]);
  const found = statusDetails(
    api,
    failedCall(grpc.status.INVALID_ARGUMENT, { 'grpc-status-details-bin': bytes }),
  );
  assert.equal(found.reason, 'INVALID_ARGUMENT');
  assert.deepEqual(found.fieldViolations, []);
});

test('broken or missing details give the status code alone', () => {
  const broken = statusDetails(
    api,
    failedCall(grpc.status.UNAVAILABLE, {
      'grpc-status-details-bin': Buffer.from([0xff, 0xff, 0xff]),
    }),
  );
  assert.equal(broken.code, 'UNAVAILABLE');
  assert.equal(broken.reason, '');
  const bare = statusDetails(api, { code: grpc.status.DEADLINE_EXCEEDED, details: 'deadline' });
  assert.equal(bare.code, 'DEADLINE_EXCEEDED');
  assert.equal(bare.retryDelaySeconds, null);
  assert.equal(describeStatus(bare), 'DEADLINE_EXCEEDED');
});
