// V8 frees the memory behind array buffers (every Buffer's) on a helper thread after each young
// GC. A gateway that had served a few thousand calls and then read a long output through
// JavaScript outran that helper on two busy cores: the memory it had yet to free counted against
// the old generation's limit, so V8 started a full GC every 25-40 ms (`--trace-gc`), and the
// gateway's CPU per GiB went from 0.55 s to 1.0-1.2 s (1 GiB through identity after 6,000 calls,
// every run). Freed inline, in the young GC itself: 0.6-0.7 s per GiB in every run, and the warm
// 1 KiB invocation's p50/p99 unchanged (0.25 / 0.74 ms). So each gateway sets it as it is made.
import v8 from 'node:v8';

const FLAG = 'concurrent-array-buffer-sweeping';

/** V8 majors known to have the flag (Node 20: 11.3, Node 22: 12.4): elsewhere an unknown flag would only print an error. */
const KNOWN_V8 = /^1[12]\./;

/**
 * Turns off V8's concurrent sweeping of array buffers for the whole process. An operator who
 * started node with either form of the flag keeps their choice. Returns whether it was set.
 */
export function sweepArrayBuffersInline(): boolean {
  if (process.execArgv.some((arg) => arg.replace(/_/g, '-').endsWith(FLAG))) return false;
  if (!KNOWN_V8.test(process.versions.v8)) return false;
  v8.setFlagsFromString(`--no-${FLAG}`);
  return true;
}
