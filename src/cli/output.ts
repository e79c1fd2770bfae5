// A reader that stops early (`sandlet … | head`) closes our stdout: later writes fail with EPIPE.
// That is the reader's choice, not a failure: the command winds down (its finally blocks still
// stop what it started) and exits quietly, as a tool killed by SIGPIPE would.

/** Exit code after stdout closed early: 128 + SIGPIPE, what shells report for `yes | head`. */
export const EXIT_OUTPUT_CLOSED = 141;

const closed = new AbortController();

/** Aborted once stdout's reader went away; long-running output (a followed log) stops on it. */
export const stdoutClosed: AbortSignal = closed.signal;

function gone(err: NodeJS.ErrnoException): boolean {
  return err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED' || err.code === 'ECONNRESET';
}

/** Turns EPIPE on stdout (and stderr) into `stdoutClosed` instead of an uncaught exception. */
export function watchOutput(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (!gone(err)) throw err;
    // Set here: a command that wrote its last line and returned learns of the EPIPE only now.
    process.exitCode = EXIT_OUTPUT_CLOSED;
    closed.abort();
  });
  // Nothing is left to tell about a closed stderr: drop what it cannot take.
  process.stderr.on('error', (err: NodeJS.ErrnoException) => {
    if (!gone(err)) throw err;
  });
}
