// Types of scripts/local-swift.mjs.
export interface TestSwift {
  /** The proxy, e.g. http://127.0.0.1:PORT (auth at /auth/v1.0, storage at /v1/AUTH_...). */
  url: string;
  dir: string;
  /** Swift's recent log lines (from its UDP syslog handler), for failure messages. */
  logs(): string[];
  /** Resolves once every request made before it has reached Swift's log (throws if started with `logs: false`). */
  settled(): Promise<void>;
  /** How many client requests `METHOD path` the proxy logged (path as sent, e.g. /v1/AUTH_test/c/o; throws if started with `logs: false`). */
  count(method: string, path: string): number;
  stop(): Promise<void>;
}
export interface SwiftUser {
  user: string;
  key: string;
  account: string;
}
export declare const SWIFT_USERS: { admin: SwiftUser; reader: SwiftUser; other: SwiftUser };
export declare function swiftUnavailable(): string | undefined;
/** `logs: false` (benchmarks): Swift's log lines go to a UDP port nobody reads, none into this process. */
export declare function startSwift(opts?: { logs?: boolean }): Promise<TestSwift>;
export declare function swiftToken(url: string, who: { user: string; key: string }): Promise<string>;
