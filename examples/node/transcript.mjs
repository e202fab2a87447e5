// The journey's bookkeeping: each call is one line of the transcript, and anything other than the
// expected outcome stops the run with a non-zero exit.
import { describeStatus, statusDetails } from './status.mjs';

export class UnexpectedResult extends Error {}

/** Fail the journey with `message` unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new UnexpectedResult(message);
}

export class Transcript {
  constructor(api, write = (line) => process.stdout.write(`${line}\n`)) {
    this.api = api;
    this.write = write;
    this.calls = 0;
  }

  /** `call()` must succeed; `verify(response)` may check it and returns the line's summary. */
  async ok(label, call, verify = () => '') {
    const started = Date.now();
    let response;
    try {
      response = await call();
    } catch (error) {
      if (error instanceof UnexpectedResult) throw error;
      throw new UnexpectedResult(
        `${label}: ${describeStatus(statusDetails(this.api, error))}: ${error.details}`,
      );
    }
    const summary = verify(response);
    this.calls += 1;
    this.write(`ok   ${label.padEnd(40)} ${summary} (${Date.now() - started} ms)`);
    return response;
  }

  /** `call()` must fail with status `code`; `verify(details)` may check the decoded details. */
  async fails(label, code, call, verify = () => {}) {
    let response;
    try {
      response = await call();
    } catch (error) {
      if (error instanceof UnexpectedResult) throw error;
      const details = statusDetails(this.api, error);
      check(
        details.code === code,
        `${label}: expected ${code}, got ${describeStatus(details)}: ${error.details}`,
      );
      check(details.reason !== '', `${label}: ${code} without google.rpc.ErrorInfo`);
      verify(details);
      this.calls += 1;
      this.write(`err  ${label.padEnd(40)} ${describeStatus(details)}`);
      return details;
    }
    throw new UnexpectedResult(`${label}: expected ${code}, got OK ${JSON.stringify(response)}`);
  }

  note(text) {
    this.write(`     ${text}`);
  }
}

/** Call `probe` until `done(result)`; fail naming `what` after `timeoutMs`. For effects that are
 * asynchronous by design (analytics aggregation, email delivery). */
export async function poll(probe, done, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (done(result)) return result;
    if (Date.now() > deadline)
      throw new UnexpectedResult(`${what}: not reached in ${timeoutMs} ms`);
    await new Promise((wake) => setTimeout(wake, 250));
  }
}
