// A user's journey across the five Zoptal services, from Node.js, with the protos as the only
// contract. Against `make run` (or any deployment, through <SVC>_ADDR):
//
//   npm ci && node journey.mjs
//
// With AUTH_BOOTSTRAP_ADMIN_EMAIL and AUTH_BOOTSTRAP_ADMIN_PASSWORD set (the admin `make run`
// creates when it is given the same two variables), an operator's part follows: aggregate
// analytics and an email, which only admins and services may ask for. Prints one line per call
// and exits non-zero on anything unexpected.
import { randomBytes, randomUUID } from 'node:crypto';

import { connect, grpc, loadApi, newTraceId, timestamp, toDate, unary } from './zoptal.mjs';
import { Transcript, UnexpectedResult, check, poll } from './transcript.mjs';

const api = loadApi();
const clients = Object.fromEntries(
  ['auth', 'project', 'billing', 'notification', 'analytics'].map((svc) => [
    svc,
    connect(api, svc),
  ]),
);
const log = new Transcript(api);
const trace = newTraceId(); // one trace for the whole journey: find it in Jaeger (compose)

/** A fresh account: RegisterUser, then Login. */
async function newUser(name) {
  const email = `node-${name}-${randomBytes(5).toString('hex')}@example.com`;
  const password = `Journey ${randomBytes(12).toString('base64url')}`;
  const registered = await log.ok(
    `auth.RegisterUser (${name})`,
    () => unary(clients.auth, 'RegisterUser', { email, password, display_name: name }, { trace }),
    (reply) => `user_id=${reply.user.id} roles=${reply.user.roles}`,
  );
  const login = await log.ok(
    `auth.Login (${name})`,
    () => unary(clients.auth, 'Login', { email, password }, { trace }),
    (reply) => {
      check(reply.user.id === registered.user.id, 'Login answered for another user');
      const expires = toDate(reply.access_token_expires_at);
      check(expires > new Date(), `access token already expired: ${expires}`);
      return `token_type=${reply.token_type} expires_at=${expires.toISOString()}`;
    },
  );
  return { id: registered.user.id, email, password, token: login.access_token, trace };
}

async function validateOwnToken(user) {
  // ValidateToken needs an authenticated caller: a user validates their own token.
  await log.ok(
    'auth.ValidateToken (own token)',
    () => unary(clients.auth, 'ValidateToken', { token: user.token }, user),
    (reply) => {
      check(reply.valid && reply.token_type === 'TOKEN_TYPE_USER', `invalid: ${reply.reason}`);
      check(reply.user_id === user.id, 'the token names another user');
      check(reply.reason === 'INVALID_TOKEN_REASON_UNSPECIFIED', `reason ${reply.reason}`);
      return `valid token_type=${reply.token_type}`;
    },
  );
}

async function billing(user) {
  await log.ok(
    'billing.GetUserSubscription',
    () => unary(clients.billing, 'GetUserSubscription', { user_id: user.id }, user),
    (reply) => {
      const projects = reply.usage.find((usage) => usage.metric === 'METRIC_PROJECTS');
      check(projects !== undefined, 'no METRIC_PROJECTS usage');
      check(typeof projects.used === 'string', 'int64 `used` is not a string');
      return `plan=${reply.subscription.plan.id} projects used=${projects.used}`;
    },
  );
  await log.ok(
    'billing.CheckSubscriptionLimits',
    () =>
      unary(
        clients.billing,
        'CheckSubscriptionLimits',
        { user_id: user.id, metric: 'METRIC_PROJECTS', quantity: '1' },
        user,
      ),
    (reply) => {
      check(reply.allowed, 'a new user may not create one project');
      return `allowed remaining=${reply.unlimited ? 'unlimited' : reply.remaining}`;
    },
  );
}

async function projects(owner, member) {
  const request = {
    name: `Node journey ${randomBytes(3).toString('hex')}`,
    request_id: randomUUID(),
  };
  const created = await log.ok(
    'project.CreateProject',
    () => unary(clients.project, 'CreateProject', request, owner),
    (reply) => {
      check(reply.project.owner_id === owner.id, 'the project has another owner');
      check(reply.project.version === '1', `version ${reply.project.version} (int64: a string)`);
      return `project_id=${reply.project.id} version=${reply.project.version}`;
    },
  );
  const project = created.project;
  // The same request_id again (as after a lost reply) returns the same project, not a second one.
  await log.ok(
    'project.CreateProject (same request_id)',
    () => unary(clients.project, 'CreateProject', request, owner),
    (reply) => {
      check(reply.project.id === project.id, 'a retry with the same request_id created another');
      return `replayed project_id=${reply.project.id}`;
    },
  );
  await log.ok(
    'project.GetProject',
    () => unary(clients.project, 'GetProject', { project_id: project.id }, owner),
    (reply) => {
      check(reply.caller_role === 'PROJECT_ROLE_OWNER', `caller_role ${reply.caller_role}`);
      return `caller_role=${reply.caller_role} created_at=${toDate(reply.project.created_at).toISOString()}`;
    },
  );
  await log.ok(
    'project.ListUserProjects',
    () => unary(clients.project, 'ListUserProjects', {}, owner),
    (reply) => {
      check(
        reply.total_count === 1 && reply.projects[0].project.id === project.id,
        `listed ${reply.total_count} projects`,
      );
      return `total_count=${reply.total_count} page=${reply.page} limit=${reply.limit}`;
    },
  );
  await log.ok(
    'project.AddProjectMember',
    () =>
      unary(
        clients.project,
        'AddProjectMember',
        { project_id: project.id, user_id: member.id, role: 'PROJECT_ROLE_EDITOR' },
        owner,
      ),
    (reply) => `member=${reply.member.user_id} role=${reply.member.role}`,
  );
  await log.ok(
    'project.GetProject (as the member)',
    () => unary(clients.project, 'GetProject', { project_id: project.id }, member),
    (reply) => {
      check(reply.caller_role === 'PROJECT_ROLE_EDITOR', `caller_role ${reply.caller_role}`);
      check(reply.project.member_count === 2, `member_count ${reply.project.member_count}`);
      return `caller_role=${reply.caller_role} member_count=${reply.project.member_count}`;
    },
  );
  return project;
}

async function analytics(user) {
  const event = {
    event_id: `node-${randomUUID()}`, // a retry with the same id is not counted twice
    user_id: user.id,
    name: 'node.journey',
    properties: { client: 'grpc-js' },
    timestamp: timestamp(new Date()),
  };
  await log.ok(
    'analytics.TrackEvent',
    () => unary(clients.analytics, 'TrackEvent', event, user),
    (reply) => {
      check(reply.event_id === event.event_id, 'another event id');
      return `event_id=${reply.event_id}`;
    },
  );
  await log.ok(
    'analytics.TrackEvent (same event_id)',
    () => unary(clients.analytics, 'TrackEvent', event, user),
    (reply) => `event_id=${reply.event_id}`,
  );
  return event;
}

function analyticsQuery(user) {
  const now = Date.now();
  return {
    start_time: timestamp(new Date(now - 3_600_000)),
    end_time: timestamp(new Date(now + 3_600_000)),
    bucket: 'BUCKET_SIZE_HOUR',
    event_names: ['node.journey'],
    user_id: user.id,
  };
}

async function expectedErrors(owner) {
  // Each error is read from its google.rpc details, never from the message text.
  await log.fails(
    'project.CreateProject (bad input)',
    'INVALID_ARGUMENT',
    () => unary(clients.project, 'CreateProject', { name: '   ', request_id: 'not a key!' }, owner),
    (details) => {
      const fields = details.fieldViolations.map((violation) => violation.field);
      check(fields.includes('name'), `BadRequest names ${fields}, not name`);
    },
  );
  const missing = randomUUID();
  await log.fails(
    'project.GetProject (unknown id)',
    'NOT_FOUND',
    () => unary(clients.project, 'GetProject', { project_id: missing }, owner),
    (details) => check(details.resource?.name === missing, 'ResourceInfo does not name the id'),
  );
  await log.fails(
    'analytics.GetAnalytics (as a user)',
    'PERMISSION_DENIED',
    () => unary(clients.analytics, 'GetAnalytics', analyticsQuery(owner), owner),
    (details) => check(details.domain === 'zoptal.analytics.v1', `domain ${details.domain}`),
  );
}

async function loginThrottle(user) {
  // Wrong passwords until Auth's login throttle answers RESOURCE_EXHAUSTED with RetryInfo; then
  // the right password after the delay it names logs in.
  const wrong = { email: user.email, password: `not ${user.password}` };
  let refused = null;
  for (let attempt = 1; attempt <= 12 && refused === null; attempt += 1) {
    try {
      await unary(clients.auth, 'Login', wrong, { trace });
      throw new UnexpectedResult('a wrong password logged in');
    } catch (error) {
      if (error instanceof UnexpectedResult) throw error;
      if (error.code !== grpc.status.UNAUTHENTICATED) {
        // anything else must be the throttle
        log.note(
          `auth.Login (wrong password) answered UNAUTHENTICATED ${attempt - 1} times, then:`,
        );
        refused = await log.fails(
          `auth.Login (wrong password, try ${attempt})`,
          'RESOURCE_EXHAUSTED',
          () => Promise.reject(error),
          (details) => check(details.retryDelaySeconds !== null, 'no google.rpc.RetryInfo'),
        );
      }
    }
  }
  check(refused !== null, 'twelve wrong passwords were never throttled');
  await new Promise((wake) => setTimeout(wake, Math.ceil(refused.retryDelaySeconds * 1000)));
  await log.ok(
    'auth.Login (after retry_delay)',
    () => unary(clients.auth, 'Login', { email: user.email, password: user.password }, { trace }),
    (reply) => `user_id=${reply.user.id}`,
  );
}

async function operator(owner, event) {
  const email = process.env.AUTH_BOOTSTRAP_ADMIN_EMAIL;
  const password = process.env.AUTH_BOOTSTRAP_ADMIN_PASSWORD;
  if (!email || !password) {
    log.note(
      'operator part skipped: set AUTH_BOOTSTRAP_ADMIN_EMAIL and AUTH_BOOTSTRAP_ADMIN_PASSWORD',
    );
    return;
  }
  const login = await log.ok(
    'auth.Login (admin)',
    () => unary(clients.auth, 'Login', { email, password }, { trace }),
    (reply) => {
      check(reply.user.roles.includes('admin'), `the operator has roles ${reply.user.roles}`);
      return `roles=${reply.user.roles}`;
    },
  );
  const admin = { token: login.access_token, trace };
  // Ingest is durable at once; aggregates follow the write buffer, so poll (bounded).
  await log.ok(
    'analytics.GetAnalytics (admin)',
    () =>
      poll(
        () => unary(clients.analytics, 'GetAnalytics', analyticsQuery(owner), admin),
        (reply) => reply.total_events !== '0',
        'the tracked event in GetAnalytics',
      ),
    (reply) => {
      check(reply.total_events === '1', `${reply.total_events} events: the retry was counted`);
      check(reply.top_events[0]?.name === event.name, 'top event is not ours');
      return `total_events=${reply.total_events} unique_users=${reply.unique_users} buckets=${reply.buckets.length}`;
    },
  );
  const send = {
    to: owner.email,
    user_id: owner.id,
    subject: 'Hello from the Node.js journey',
    body_text: 'Sent with @grpc/grpc-js from the protos alone.',
    idempotency_key: `node-${randomUUID()}`,
  };
  const sent = await log.ok(
    'notification.SendEmail (admin)',
    () => unary(clients.notification, 'SendEmail', send, admin),
    (reply) => `notification_id=${reply.notification_id} status=${reply.status}`,
  );
  await log.ok(
    'notification.SendEmail (same key)',
    () => unary(clients.notification, 'SendEmail', send, admin),
    (reply) => {
      check(reply.deduplicated && reply.notification_id === sent.notification_id, 'sent twice');
      return `deduplicated=${reply.deduplicated}`;
    },
  );
  await log.ok(
    'notification.GetNotificationHistory',
    () => unary(clients.notification, 'GetNotificationHistory', { user_id: owner.id }, owner),
    (reply) => {
      const mine = reply.notifications.find((item) => item.id === sent.notification_id);
      check(mine !== undefined, "the email is not in the recipient's history");
      return `total_count=${reply.total_count} status=${mine.status}`;
    },
  );
}

async function revoke(user) {
  await log.ok(
    'auth.RevokeToken (own token)',
    () => unary(clients.auth, 'RevokeToken', { token: user.token }, user),
    (reply) => {
      check(reply.revoked, 'the live token was not revoked');
      return `revoked=${reply.revoked}`;
    },
  );
  await log.fails('auth.ValidateToken (revoked caller)', 'UNAUTHENTICATED', () =>
    unary(clients.auth, 'ValidateToken', { token: user.token }, user),
  );
}

async function main() {
  log.note(`trace id ${trace}`);
  const owner = await newUser('owner');
  await validateOwnToken(owner);
  const member = await newUser('member');
  await billing(owner);
  await projects(owner, member);
  const event = await analytics(owner);
  await expectedErrors(owner);
  await operator(owner, event);
  await loginThrottle(member);
  await revoke(owner);
  log.note(`journey complete: ${log.calls} calls as expected`);
}

try {
  await main();
} catch (error) {
  process.stdout.write(`FAIL ${error instanceof UnexpectedResult ? error.message : error.stack}\n`);
  process.exitCode = 1;
} finally {
  for (const client of Object.values(clients)) client.close();
}
