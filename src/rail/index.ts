// The payment rails: HttpRail (a real rail over the documented HTTP protocol), the simulator's
// core, HTTP server and process, and the in-process simulated rail.
export { HttpRail, type HttpRailOptions } from './http-rail.ts';
export { InProcessSimRail, type InProcessSimRailOptions } from './in-process.ts';
export {
  DEFAULT_SIM_CONFIG,
  MAX_RAIL_AMOUNT,
  RailKeyReusedError,
  SIM_FAILURE_REASON,
  SimRailCore,
  SimRailError,
  executionToJson,
  validateConfigPatch,
  type SimAnswer,
  type SimExecution,
  type SimRailConfig,
  type SimRailCoreOptions,
  type SimRailStats,
  type SimStatus,
} from './sim-core.ts';
export { startSimRail, type SimRailServer, type SimRailServerOptions } from './sim-server.ts';
export { spawnSimRail, type SpawnSimRailOptions, type SpawnedSimRail } from './spawn.ts';
