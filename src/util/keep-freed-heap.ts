// How much freed heap a process keeps for reuse rather than handing it back to the kernel at each
// burst of frees (native/sbus.c, keepFreedHeap): the gateway and the agent each set it once, at start.
import { native } from '../sbus/native.js';

/**
 * The gateway's: above what V8 frees at once (about 32 MiB of Buffers) when an output streams
 * through JS. Measured on 1 GiB through the library API: 100,000+ page faults became 12,000, and
 * the gateway's CPU per GiB fell by about a quarter.
 */
export const GATEWAY_KEPT_HEAP_BYTES = 64 * 1024 * 1024;

/**
 * The agent's, per glibc arena (each task thread may have its own): its bursts are smaller, and a
 * sandbox's memory is capped. Enough to take the agent's faults per GiB from 10,000s to hundreds.
 */
export const AGENT_KEPT_HEAP_BYTES = 16 * 1024 * 1024;

/** Larger allocations are mapped (and unmapped when freed) as glibc does by default. */
const HEAP_ALLOCATION_MAX_BYTES = 4 * 1024 * 1024;

let settled = false;

/**
 * Applies `bytes` once per process: later calls change nothing. An operator's own malloc
 * settings (GLIBC_TUNABLES with glibc.malloc.*) win. Returns whether the setting took effect
 * (false off glibc).
 */
export function keepFreedHeap(bytes: number, env: NodeJS.ProcessEnv = process.env): boolean {
  if (settled) return false;
  settled = true;
  if ((env.GLIBC_TUNABLES ?? '').includes('glibc.malloc.')) return false;
  return native.keepFreedHeap(bytes, HEAP_ALLOCATION_MAX_BYTES);
}
