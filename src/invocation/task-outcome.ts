// A task's outcome as its daemon reports it on the status pipe, and how a failure is explained.

export interface TaskOutcome {
  status: boolean;
  message: string;
  /** The task's thread died with no reason of its own: the sandbox may know why (see failureReason). */
  died?: true;
}

export function parseStatus(raw: Buffer): TaskOutcome {
  if (raw.length === 0) throw new Error('status pipe closed empty');
  const v = JSON.parse(raw.toString('utf8')) as { status?: unknown; message?: unknown; died?: unknown };
  return { status: v.status === true, message: typeof v.message === 'string' ? v.message : '', ...(v.died === true ? { died: true } : {}) };
}

/**
 * Why a task failed: the daemon's message, unless it has none or only knows the thread died, in
 * which case the sandbox's account (an OOM kill the engine reported) comes first.
 */
export async function failureReason(
  outcome: TaskOutcome | undefined,
  explain: (() => Promise<string | undefined>) | undefined,
): Promise<string | undefined> {
  if (outcome && !outcome.died) return outcome.message;
  return (await explain?.()) ?? outcome?.message;
}
