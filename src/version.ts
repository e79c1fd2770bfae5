// Versions announced by the agent in its PING reply and checked by the gateway.
// The protocol version moves only when the wire changes incompatibly.
export const AGENT_VERSION = '0.1.0';
export const PROTOCOL_VERSION = 1;
