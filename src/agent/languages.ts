// The storlet languages: one list for the agent (START_DAEMON's daemon_language) and for
// registration. Imports nothing, so host code can read it without loading the agent.

export const STORLET_LANGUAGES = ['js', 'python', 'exec'] as const;
export type StorletLanguage = (typeof STORLET_LANGUAGES)[number];

/** Names a gateway may send for each language (Storlets' gateway says `python`). */
const ALIASES: Record<string, StorletLanguage> = {
  js: 'js', javascript: 'js', node: 'js', nodejs: 'js',
  python: 'python', python3: 'python', py: 'python',
  exec: 'exec', executable: 'exec',
};

export function storletLanguage(name: unknown): StorletLanguage | undefined {
  return ALIASES[String(name ?? '').toLowerCase()];
}

/** A Python storlet's main: `module.Class`, as Storlets names it (no nested module). */
export const PYTHON_MAIN = /^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$/;
