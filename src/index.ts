// The package's public entry: the gateway, its config and its errors.
export { createGateway, Gateway, type InvokeRequest, type InvokeResult, type GatewayOptions } from './gateway.js';
export { loadConfig, resolveConfig, type SandletConfig, type SandletConfigInput } from './config.js';
export { SandletError, type SandletErrorCode } from './errors.js';
export type { InvocationInput, ExtraInput, ByteRange } from './invocation/invocation.js';
export type { StorletContext, StorletInput, StorletOutput, StorletLogger, StorletRange } from './agent/storlet-api.js';
export { LocalStore } from './cache/local-store.js';
export { StorletsAgent, type StorletsAgentOptions, type PythonStorlet, type StorletsFile, type StorletsInvocation } from './runtime/storlets-agent.js';
