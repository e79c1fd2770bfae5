// The agent's tie to whoever started it: with an IPC channel to a parent (the gateway for a
// process sandbox, the factory for a daemon), the parent's death ends this process too.

/** With an IPC channel to a parent, the parent's death (channel closed) ends this process too. */
export function exitWithParent(stop: () => void): void {
  if (!process.send) return;
  process.once('disconnect', stop);
  // The channel must not keep an otherwise idle process alive, nor end it: the SBus socket does.
  process.channel?.unref();
}
