// Assertions the live tests share.

import assert from "node:assert/strict";

import { SatchelError, status } from "../src/index";

/** Awaits promise and asserts it rejects with a SatchelError of `code`; returns the error. */
export async function rejectsWith(promise: Promise<unknown>, code: status): Promise<SatchelError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SatchelError, `expected a SatchelError, got ${err}`);
    assert.equal(err.code, code, `expected ${status[code]}, got ${status[err.code]}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${status[code]}, but the call succeeded`);
}
