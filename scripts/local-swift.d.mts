// Types of scripts/local-swift.mjs.
export interface TestSwift {
  /** The proxy, e.g. http://127.0.0.1:PORT (auth at /auth/v1.0, storage at /v1/AUTH_...). */
  url: string;
  dir: string;
  /** Swift's recent log lines (from its UDP syslog handler), for failure messages. */
  logs(): string[];
  stop(): Promise<void>;
}
export interface SwiftUser {
  user: string;
  key: string;
  account: string;
}
export declare const SWIFT_USERS: { admin: SwiftUser; reader: SwiftUser; other: SwiftUser };
export declare function swiftUnavailable(): string | undefined;
export declare function startSwift(): Promise<TestSwift>;
export declare function swiftToken(url: string, who: { user: string; key: string }): Promise<string>;
