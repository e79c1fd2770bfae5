// SBus names, exactly as OpenStack Storlets spells them on the wire.

export const Command = {
  PING: 'SBUS_CMD_PING',
  START_DAEMON: 'SBUS_CMD_START_DAEMON',
  STOP_DAEMON: 'SBUS_CMD_STOP_DAEMON',
  DAEMON_STATUS: 'SBUS_CMD_DAEMON_STATUS',
  STOP_DAEMONS: 'SBUS_CMD_STOP_DAEMONS',
  HALT: 'SBUS_CMD_HALT',
  EXECUTE: 'SBUS_CMD_EXECUTE',
  CANCEL: 'SBUS_CMD_CANCEL',
} as const;
export type CommandName = (typeof Command)[keyof typeof Command];

export const FdType = {
  INPUT_OBJECT: 'SBUS_FD_INPUT_OBJECT',
  OUTPUT_OBJECT: 'SBUS_FD_OUTPUT_OBJECT',
  OUTPUT_OBJECT_METADATA: 'SBUS_FD_OUTPUT_OBJECT_METADATA',
  LOGGER: 'SBUS_FD_LOGGER',
  SERVICE_OUT: 'SBUS_FD_SERVICE_OUT',
  /**
   * sandlet-only: a pipe on which the daemon writes the task's final outcome, so the gateway can
   * tell a complete output from one cut short by a failure. Sent only to agents whose PING reply
   * carries a sandlet `version`; Storlets agents never see it.
   */
  TASK_STATUS: 'SANDLET_FD_TASK_STATUS',
} as const;
export type FdTypeName = (typeof FdType)[keyof typeof FdType];

export type Codec = 'msgpack' | 'json';

/** Per-fd metadata: `{"storlets": {"type": ..., ...}, "storage": {...}}`. */
export interface FdMetadata {
  storlets: { type: string; [key: string]: unknown };
  storage: Record<string, unknown>;
}

export interface CommandParams {
  command: string;
  params?: Record<string, unknown>;
  task_id?: string;
  /** sandlet-only: the daemon a command on the factory's connection is for (see SBusClient). */
  daemon?: string;
}

/** The reply written on SBUS_FD_SERVICE_OUT. Extra keys are sandlet-only; Storlets ignores them. */
export interface Reply {
  status: boolean;
  message: string;
  task_id?: string;
  [key: string]: unknown;
}

export const DEFAULT_MAX_DATAGRAM_BYTES = 64 * 1024;
/**
 * What a Storlets agent reads of one datagram, header included: its C libsbus receives into a
 * buffer of MAX_MSG_LENGTH bytes, and the kernel drops the rest of a longer datagram unseen.
 */
export const LIBSBUS_MAX_MSG_BYTES = 4096;
/** A reply is written with one non-blocking write; up to PIPE_BUF it is atomic. */
export const MAX_REPLY_BYTES = 4096;
