/**
 * Callbacks that run once, when an invocation is torn down. An AbortController does the same but
 * costs an EventTarget, a listener object per reader and a DOMException per abort; this runs
 * several times per invocation, so it is kept to an array.
 */
export class Teardown {
  private fns: (() => void)[] | undefined = [];

  /** Runs fn at teardown, or now when that has happened. */
  add(fn: () => void): void {
    if (this.fns) this.fns.push(fn);
    else fn();
  }

  run(): void {
    const fns = this.fns;
    this.fns = undefined;
    for (const fn of fns ?? []) fn();
  }
}
