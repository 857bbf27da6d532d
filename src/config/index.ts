export {
  DEFAULTS,
  EVENT_SINKS,
  LIMITS,
  LOG_LEVELS,
  MODES,
  SUPPORTED_ALGORITHMS,
  type SupportedAlgorithm,
} from './defaults.js';
export { formatDuration, parseDuration } from './duration.js';
export { ConfigError, formatIssues, formatPath, type ConfigIssue } from './issues.js';
export {
  expandString,
  loadConfigFile,
  parseConfig,
  type ConfigResult,
  type ParseConfigOptions,
} from './load.js';
export { normalizeTyp, toIssuerPolicy, toPolicy } from './policy.js';
export {
  exemptPathProblem,
  hopguardConfigSchema,
  splitHostPort,
  validateConfig,
  type DelegationConfig,
  type EventSink,
  type EventsConfig,
  type EventsHttpConfig,
  type ExemptConfig,
  type HopguardConfig,
  type IssuerConfig,
  type ListenConfig,
  type LogConfig,
  type LogLevel,
  type ReplayConfig,
  type ShutdownConfig,
  type LimitsConfig,
  type TokenConfig,
  type ValidateOptions,
  type ValidateResult,
  type WorkloadConfig,
} from './schema.js';
