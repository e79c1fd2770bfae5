// The test side of scripts/local-swift.mjs: whether Swift tests can run here, and the typed API.
export { startSwift, swiftToken, swiftUnavailable, SWIFT_USERS } from '../../scripts/local-swift.mjs';
export type { TestSwift } from '../../scripts/local-swift.mjs';
import { swiftUnavailable } from '../../scripts/local-swift.mjs';

export const swiftReason = swiftUnavailable();
/** Swift tests run where Swift is installed; in CI they must run (a missing Swift fails them). */
export const skipSwift = swiftReason !== undefined && !process.env.CI;
export function requireSwift(): void {
  if (swiftReason) throw new Error(`Swift tests are required in CI: ${swiftReason}`);
}
