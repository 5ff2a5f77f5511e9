// A fake agent for unit-testing checks on Node, outside a component:
//
//   import { FakeHost, sample, xidEvent } from '../sdk/testing.js';
//   const host = new FakeHost({ samples: [sample(0, { temperatureCelsius: 97 })], config: { warning_celsius: 90 } });
//   const report = check(host);

import { Host } from './host.js';
import { Action, Severity } from './model.js';

/** A GPU's static facts; unspecified fields are empty. */
export function gpu(index, fields = {}) {
  return {
    index,
    uuid: '',
    model: '',
    pciBusId: '',
    serial: undefined,
    memoryTotalBytes: 0n,
    powerLimitWatts: undefined,
    pcieMaxGeneration: undefined,
    pcieMaxWidth: undefined,
    nvlinkCount: 0,
    slowdownTemperatureCelsius: undefined,
    shutdownTemperatureCelsius: undefined,
    ...fields,
  };
}

/** A sample; unspecified fields are `undefined` (unsupported). u64 fields are BigInts. */
export function sample(index, fields = {}) {
  return {
    index,
    lost: false,
    utilization: undefined,
    memoryUtilization: undefined,
    memoryUsedBytes: undefined,
    memoryFreeBytes: undefined,
    memoryReservedBytes: undefined,
    temperatureCelsius: undefined,
    memoryTemperatureCelsius: undefined,
    powerWatts: undefined,
    energyJoules: undefined,
    smClockHertz: undefined,
    memoryClockHertz: undefined,
    clockEventReasons: undefined,
    pcieGeneration: undefined,
    pcieWidth: undefined,
    pcieReplays: undefined,
    ecc: {
      correctedVolatile: undefined,
      uncorrectedVolatile: undefined,
      correctedAggregate: undefined,
      uncorrectedAggregate: undefined,
    },
    remappedRows: undefined,
    nvlinks: [],
    fanSpeed: undefined,
    recoveryAction: undefined,
    computeProcesses: undefined,
    computeProcessesMemoryBytes: undefined,
    ...fields,
  };
}

/** A health event. */
export function event(seq, kind, fields = {}) {
  return {
    seq: BigInt(seq),
    timeUnixMs: 0n,
    gpu: undefined,
    uuid: undefined,
    kind,
    code: undefined,
    message: '',
    severity: Severity.INFO,
    action: Action.NONE,
    ...fields,
  };
}

/** An XID event on GPU 0 (or `options.gpu`; `undefined` for the node), worded as the agent words one when `message` is not given. */
export function xidEvent(seq, code, options = {}) {
  const { timeUnixMs = 0n, message } = options;
  return event(seq, 'xid', {
    gpu: 'gpu' in options ? options.gpu : 0,
    code: BigInt(code),
    timeUnixMs: BigInt(timeUnixMs),
    message: message ?? `XID ${code}`,
    severity: Severity.WARNING,
    action: Action.CONTACT_SUPPORT,
  });
}

/** The host interface over fixed data; `logs` collects what the plugin logged. */
export class FakeBackend {
  constructor({
    gpus = [],
    samples = [],
    previousSamples = [],
    events = [],
    previousCursor = 0n,
    config = [],
    wallClockUnixMs = 0n,
    monotonicNowNs = 0n,
  } = {}) {
    this._gpus = [...gpus];
    this._samples = [...samples];
    this._previous = [...previousSamples];
    this._events = [...events].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
    this._cursor = BigInt(previousCursor);
    this._config = Array.isArray(config) ? config.map(([k, v]) => [k, String(v)]) : Object.entries(config).map(([k, v]) => [k, String(v)]);
    this.nowMs = BigInt(wallClockUnixMs);
    this.nowNs = BigInt(monotonicNowNs);
    this.logs = [];
  }

  gpus() {
    return [...this._gpus];
  }

  samples(includeNvlinks) {
    return includeNvlinks ? [...this._samples] : this._samples.map((s) => ({ ...s, nvlinks: [] }));
  }

  previousSamples(includeNvlinks) {
    return includeNvlinks ? [...this._previous] : this._previous.map((s) => ({ ...s, nvlinks: [] }));
  }

  eventsAfter(cursor, limit) {
    return this._events.filter((e) => BigInt(e.seq) > BigInt(cursor)).slice(0, limit);
  }

  previousCursor() {
    return this._cursor;
  }

  config() {
    return this._config.map(([k, v]) => [k, v]);
  }

  log(level, message) {
    this.logs.push([level, message]);
  }

  monotonicNowNs() {
    return this.nowNs;
  }

  wallClockUnixMs() {
    return this.nowMs;
  }
}

/** A `Host` over a `FakeBackend` built from the same options; `host.logs` is what the plugin logged. */
export class FakeHost extends Host {
  constructor(options = {}) {
    const backend = new FakeBackend(options);
    super(backend);
    this.backend = backend;
  }

  get logs() {
    return this.backend.logs;
  }
}

const AGENT = Symbol.for('gpuwarden.fakeAgent');
const HOST_SPECIFIER = 'gpuwarden:plugin/host@0.1.0';
const HOST_FUNCTIONS = [
  'gpus',
  'samples',
  'previousSamples',
  'eventsAfter',
  'previousCursor',
  'config',
  'log',
  'monotonicNowNs',
  'wallClockUnixMs',
];
let hooksInstalled = false;

/**
 * Lets Node load a plugin (`app.js`, which imports `plugin.js`) by serving
 * `gpuwarden:plugin/host@0.1.0` from a `FakeBackend` built from `options`; call it again to
 * change what the agent shows. Returns the backend (its `logs` are what the plugin logged).
 *
 *   const agent = await fakeAgent({ samples: [sample(1, { temperatureCelsius: 97 })] });
 *   const { checker } = await import('../examples/thermal/app.js');
 *   checker.check(); // the report as the component returns it
 */
export async function fakeAgent(options = {}) {
  const backend = options instanceof FakeBackend ? options : new FakeBackend(options);
  globalThis[AGENT] = backend;
  if (!hooksInstalled) {
    const { register } = await import('node:module');
    const fake = HOST_FUNCTIONS.map(
      (f) => `export function ${f}(...a) { const b = globalThis[Symbol.for('gpuwarden.fakeAgent')]; ` +
        `if (!b) throw new Error('no fake agent: call fakeAgent() first'); return b.${f}(...a); }`,
    ).join('\n');
    const fakeUrl = `data:text/javascript,${encodeURIComponent(fake)}`;
    const hooks = `export async function resolve(specifier, context, next) {
      if (specifier === ${JSON.stringify(HOST_SPECIFIER)}) return { url: ${JSON.stringify(fakeUrl)}, shortCircuit: true };
      return next(specifier, context);
    }`;
    register(`data:text/javascript,${encodeURIComponent(hooks)}`);
    hooksInstalled = true;
  }
  return backend;
}
