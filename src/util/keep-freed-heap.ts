// How much freed heap a process keeps for reuse rather than handing it back to the kernel at each
// burst of frees (native/sbus.c, keepFreedHeap): each gateway sets it as it is made. Not the
// agent: kept per malloc arena (one per task thread, up to 16 here), 16 MiB each grew a soak's
// agent by 88 MiB of a sandbox's 512 MiB, for a few percent of its CPU per GiB.
import { native } from '../sbus/native.js';

/**
 * The gateway's: above what V8 frees at once (about 32 MiB of Buffers) when an output streams
 * through JS. Measured on 1 GiB through the library API: 100,000+ page faults became 12,000, and
 * the gateway's CPU per GiB fell by about a quarter.
 */
export const GATEWAY_KEPT_HEAP_BYTES = 64 * 1024 * 1024;

/** Larger allocations are mapped (and unmapped when freed) as glibc does by default. */
const HEAP_ALLOCATION_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Sets glibc to keep `bytes` of freed heap, for the whole process (the same values each time it
 * is called). An operator's own malloc settings (GLIBC_TUNABLES with glibc.malloc.*) win.
 * Returns whether the setting took effect (false off glibc).
 */
export function keepFreedHeap(bytes: number): boolean {
  if ((process.env.GLIBC_TUNABLES ?? '').includes('glibc.malloc.')) return false;
  return native.keepFreedHeap(bytes, HEAP_ALLOCATION_MAX_BYTES);
}
