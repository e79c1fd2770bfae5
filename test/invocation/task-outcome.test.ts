import { describe, expect, it } from 'vitest';
import { failureReason, parseStatus } from '../../src/invocation/task-outcome.js';

const oom = async () => 'it was killed: the sandbox ran out of memory (container_mem_limit 256m)';
const nothing = async () => undefined;

describe('task outcome', () => {
  it('parses a status line, keeping died only when it is true', () => {
    expect(parseStatus(Buffer.from('{"status":true,"message":"ok"}\n'))).toEqual({ status: true, message: 'ok' });
    expect(parseStatus(Buffer.from('{"status":false,"message":"gone","died":true}'))).toEqual({ status: false, message: 'gone', died: true });
    expect(parseStatus(Buffer.from('{"status":"yes","died":"true"}'))).toEqual({ status: false, message: '' });
    expect(() => parseStatus(Buffer.alloc(0))).toThrow('status pipe closed empty');
  });

  it("takes the storlet's own message over the sandbox's account", async () => {
    expect(await failureReason({ status: false, message: 'disk on fire' }, oom)).toBe('disk on fire');
  });

  it("asks the sandbox when the thread died unexplained, or no outcome came", async () => {
    const died = { status: false, message: 'storlet worker died before finishing the task', died: true as const };
    expect(await failureReason(died, oom)).toMatch(/ran out of memory/);
    expect(await failureReason(died, nothing)).toBe(died.message);
    expect(await failureReason(undefined, oom)).toMatch(/ran out of memory/);
    expect(await failureReason(undefined, undefined)).toBeUndefined();
  });
});
