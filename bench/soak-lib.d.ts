// Types of bench/soak-lib.js, for the CI-sized soak (test/server/soak.int.test.ts).
export interface SoakServer {
  pid: number;
  backend: string;
  socket: string;
  token: string;
  containerName: string;
  stderr: () => string;
  stop: () => Promise<void>;
}
export interface Sample {
  /** What each fd names (pipes and sockets by kind). */
  open: string[];
  fds: number;
  threads: number;
  rssMiB: number;
}
export const STORLET_TIMEOUT_MS: number;
export const KINDS: Record<string, { weight: number; expect: string[] }>;
export function startSoakServer(opts: { root: string; backend?: string; packageRoot: string; image?: string; logLevel?: string }): Promise<SoakServer>;
export function runSoak(
  s: SoakServer,
  n: number,
  concurrency?: number,
  onProgress?: (done: number) => void,
): Promise<{ counts: Record<string, Record<string, number>>; unexpected: string[] }>;
export function fillPools(s: SoakServer, poolSize?: number): Promise<void>;
export function agentPid(s: SoakServer): number;
export function newlyOpen(before: Sample, after: Sample): string[];
export function sampleAll(s: SoakServer, quietMs?: number): Promise<{ server: Sample; agent: Sample }>;
