// A Proxy-Wasm host in JavaScript: runs a filter module (kfauth.wasm, the empty
// filter) in Node's V8 the way Envoy runs it, so the VM side of a request can
// be timed without Envoy around it.
//
// It implements the host functions of ABI v0.2.1
// (https://github.com/proxy-wasm/spec/tree/main/abi-versions/v0.2.1) that a
// filter needs for HTTP streams: logs, the clock, buffers (configuration,
// callout bodies), header maps, local replies, shared data with CAS, metrics,
// ticks and HTTP callouts; and the few WASI calls Rust's std makes. Any other
// import answers UNIMPLEMENTED and is recorded in `unimplemented`, so a test
// sees a module reaching for something this host lacks.
//
// Where the spec leaves a choice, Envoy's behaviour is followed (facts from
// proxy-wasm-cpp-host src/exports.cc and Envoy's source/extensions/common/wasm):
// header names are lowercase; a read of one header answers its first value;
// replace sets the first value and drops the others, or appends; memory the
// host returns is allocated through the module's `proxy_on_memory_allocate`.

const OK = 0;
const NOT_FOUND = 1;
const BAD_ARGUMENT = 2;
const SERIALIZATION_FAILURE = 3;
const INVALID_MEMORY_ACCESS = 6;
const CAS_MISMATCH = 8;
const UNIMPLEMENTED = 12;

/** proxy_map_type_t */
export const MapType = Object.freeze({
  requestHeaders: 0,
  requestTrailers: 1,
  responseHeaders: 2,
  responseTrailers: 3,
  httpCallResponseHeaders: 6,
  httpCallResponseTrailers: 7,
});

/** proxy_buffer_type_t */
const BufferType = Object.freeze({
  httpCallResponseBody: 4,
  vmConfiguration: 6,
  pluginConfiguration: 7,
});

/** proxy_action_t */
export const Action = Object.freeze({ continue: 0, pause: 1 });

export const ROOT_CONTEXT_ID = 1;
const WASI_ENOSYS = 52;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A header map: ordered (name, value) pairs, with its serialized form (the
 * ABI's: a u32 count, a u32 name and value length per pair, then each name and
 * value followed by a NUL) kept until an edit. `reset()` puts back the pairs it
 * was made with, without copying, so a benchmark can replay one map a million
 * times; the first edit after a reset copies.
 */
export class HeaderMap {
  constructor(pairs = []) {
    this.original = pairs.map(([name, value]) => [name.toLowerCase(), value]);
    this.originalSerialized = serializePairs(this.original);
    this.reset();
  }

  reset() {
    this.pairs = this.original;
    this.serialized = this.originalSerialized;
    this.owned = false;
  }

  get size() {
    return this.pairs.length;
  }

  /** The first value of `name`, or undefined. */
  get(name) {
    for (const pair of this.pairs) if (pair[0] === name) return pair[1];
    return undefined;
  }

  /** Every value of `name`. */
  getAll(name) {
    return this.pairs.filter((pair) => pair[0] === name).map((pair) => pair[1]);
  }

  toSerialized() {
    this.serialized ??= serializePairs(this.pairs);
    return this.serialized;
  }

  edit() {
    if (!this.owned) {
      this.pairs = this.pairs.slice();
      this.owned = true;
    }
    this.serialized = null;
    return this.pairs;
  }

  add(name, value) {
    this.edit().push([name, value]);
  }

  replace(name, value) {
    const index = this.pairs.findIndex((pair) => pair[0] === name);
    if (index < 0) return this.add(name, value);
    const pairs = this.edit();
    pairs[index] = [name, value];
    for (let later = pairs.length - 1; later > index; later--) if (pairs[later][0] === name) pairs.splice(later, 1);
  }

  remove(name) {
    for (let index = this.pairs.length - 1; index >= 0; index--) {
      if (this.pairs[index][0] === name) this.edit().splice(index, 1);
    }
  }

  setAll(pairs) {
    this.edit();
    this.pairs = pairs;
  }
}

export function serializePairs(pairs) {
  const encoded = pairs.map(([name, value]) => [encoder.encode(name), encoder.encode(value)]);
  let size = 4 + 8 * encoded.length;
  for (const [name, value] of encoded) size += name.length + value.length + 2;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, encoded.length, true);
  let at = 4;
  for (const [name, value] of encoded) {
    view.setUint32(at, name.length, true);
    view.setUint32(at + 4, value.length, true);
    at += 8;
  }
  for (const [name, value] of encoded) {
    bytes.set(name, at);
    at += name.length + 1;
    bytes.set(value, at);
    at += value.length + 1;
  }
  return bytes;
}

/** Pairs from the ABI's serialized form; null when it does not parse. */
export function parsePairs(bytes) {
  if (bytes.length < 4) return bytes.length === 0 ? [] : null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  let at = 4 + 8 * count;
  if (at > bytes.length) return null;
  const pairs = [];
  for (let index = 0; index < count; index++) {
    const nameLength = view.getUint32(4 + 8 * index, true);
    const valueLength = view.getUint32(8 + 8 * index, true);
    if (at + nameLength + valueLength + 2 > bytes.length) return null;
    const name = decoder.decode(bytes.subarray(at, at + nameLength));
    at += nameLength + 1;
    const value = decoder.decode(bytes.subarray(at, at + valueLength));
    at += valueLength + 1;
    pairs.push([name, value]);
  }
  return pairs;
}

/**
 * One VM: an instance of the module with its root context, configured, and
 * then fed streams. Like Envoy, it calls only the callbacks the module exports.
 */
export class Vm {
  /**
   * @param {WebAssembly.Module} module compiled once, instantiated per Vm
   * @param {object} options `now()` the clock in ns (BigInt), `properties`
   *   (path joined with "." -> string), `foreignFunctions` (name -> bytes ->
   *   bytes or null), `logLimit` (lines kept), `logLevel` (the lowest level
   *   the host writes, as `proxy_get_log_level` answers it: 0 trace ... 5
   *   critical; Envoy's default, info = 2; settable later as `vm.logLevel`)
   */
  constructor(module, options = {}) {
    this.now = options.now ?? (() => BigInt(Date.now()) * 1_000_000n);
    this.properties = options.properties ?? {};
    this.foreignFunctions = options.foreignFunctions ?? {};
    this.logLimit = options.logLimit ?? 1000;
    this.logLevel = options.logLevel ?? 2;
    this.logs = [];
    this.unimplemented = new Set();
    this.calls = null; // name -> count, while counting
    this.sequence = null; // [name or "→export", ...] in order, while counting
    this.propertiesSet = null; // [[path, value], ...], while counting
    this.metrics = new Map(); // id -> { name, type, value }
    this.metricIds = new Map(); // name -> id
    this.sharedData = new Map(); // key -> { value, cas }
    this.casCounter = 0;
    this.tickPeriodMs = 0;
    this.httpCalls = new Map(); // token -> request
    this.nextCallToken = 1;
    this.buffers = new Map();
    this.maps = new Map();
    this.contexts = new Set();
    this.effective = 0;
    this.nextContextId = ROOT_CONTEXT_ID + 1;
    this.instance = new WebAssembly.Instance(module, this.imports(module));
    this.exports = this.instance.exports;
    this.memory = this.exports.memory;
    this.u8 = Buffer.from(this.memory.buffer);
    this.view = new DataView(this.memory.buffer);
  }

  /** _initialize, the root context, on_vm_start and on_configure; true when the module took the configuration. */
  start({ vmConfiguration = "", pluginConfiguration = "" } = {}) {
    const ex = this.exports;
    ex._initialize?.();
    this.buffers.set(BufferType.vmConfiguration, encoder.encode(vmConfiguration));
    this.buffers.set(BufferType.pluginConfiguration, encoder.encode(pluginConfiguration));
    this.contexts.add(ROOT_CONTEXT_ID);
    this.effective = ROOT_CONTEXT_ID;
    ex.proxy_on_context_create(ROOT_CONTEXT_ID, 0);
    const vmStarted = ex.proxy_on_vm_start(ROOT_CONTEXT_ID, this.bufferSize(BufferType.vmConfiguration)) !== 0;
    const configured =
      vmStarted && ex.proxy_on_configure(ROOT_CONTEXT_ID, this.bufferSize(BufferType.pluginConfiguration)) !== 0;
    this.buffers.delete(BufferType.vmConfiguration);
    this.buffers.delete(BufferType.pluginConfiguration);
    return configured;
  }

  /**
   * One HTTP stream through the request headers, as Envoy drives it for a
   * header-only request: context create, request headers (end of stream), then
   * done, log and delete. `requestHeaders` is a HeaderMap, edited in place.
   * Returns the action on_request_headers answered; `localReply` holds what
   * the module sent instead of forwarding, if anything.
   */
  request(requestHeaders, responseHeaders = null) {
    const ex = this.exports;
    const id = this.nextContextId++;
    this.localReply = null;
    this.continued = false;
    this.maps.set(MapType.requestHeaders, requestHeaders);
    this.contexts.add(id);
    this.effective = id;
    ex.proxy_on_context_create(id, ROOT_CONTEXT_ID);
    this.effective = id;
    const action = ex.proxy_on_request_headers(id, requestHeaders.size, 1);
    if (responseHeaders && ex.proxy_on_response_headers && this.localReply === null) {
      this.maps.set(MapType.responseHeaders, responseHeaders);
      this.effective = id;
      ex.proxy_on_response_headers(id, responseHeaders.size, 1);
    }
    this.effective = id;
    ex.proxy_on_done?.(id);
    ex.proxy_on_log?.(id);
    ex.proxy_on_delete(id);
    this.contexts.delete(id);
    this.maps.delete(MapType.requestHeaders);
    this.maps.delete(MapType.responseHeaders);
    this.effective = ROOT_CONTEXT_ID;
    return action;
  }

  /** The root's tick, as Envoy fires it after `proxy_set_tick_period_milliseconds`. */
  tick() {
    this.effective = ROOT_CONTEXT_ID;
    this.exports.proxy_on_tick?.(ROOT_CONTEXT_ID);
  }

  /** Answers an HTTP callout the module made (`httpCalls` holds the requests). */
  answerHttpCall(token, { headers = [], body = "" }) {
    const map = new HeaderMap(headers);
    const bytes = encoder.encode(body);
    this.httpCalls.delete(token);
    this.maps.set(MapType.httpCallResponseHeaders, map);
    this.buffers.set(BufferType.httpCallResponseBody, bytes);
    this.effective = ROOT_CONTEXT_ID;
    this.exports.proxy_on_http_call_response(ROOT_CONTEXT_ID, token, map.size, bytes.length, 0);
    this.maps.delete(MapType.httpCallResponseHeaders);
    this.buffers.delete(BufferType.httpCallResponseBody);
  }

  /** The value of a counter or gauge by name (a BigInt), or undefined. */
  metric(name) {
    const id = this.metricIds.get(name);
    return id === undefined ? undefined : this.metrics.get(id).value;
  }

  // ---- memory ----

  /** The memory views, renewed after the module's memory grew (which detaches the old buffer). */
  bytes() {
    if (this.u8.byteLength === 0) {
      this.u8 = Buffer.from(this.memory.buffer);
      this.view = new DataView(this.memory.buffer);
    }
    return this.u8;
  }

  dataView() {
    this.bytes();
    return this.view;
  }

  string(pointer, size) {
    // Buffer's own UTF-8 decoding: several times faster than TextDecoder on short strings.
    return this.bytes().toString("utf8", pointer, pointer + size);
  }

  copyOut(pointer, size) {
    return new Uint8Array(this.bytes().subarray(pointer, pointer + size));
  }

  /** Writes a string into memory the module allocates, as `returnBytes` does bytes. */
  returnString(value, pointerOut, sizeOut) {
    const size = Buffer.byteLength(value);
    let pointer = 0;
    if (size > 0) {
      pointer = this.exports.proxy_on_memory_allocate(size);
      if (pointer === 0) return INVALID_MEMORY_ACCESS;
      this.bytes().write(value, pointer, size);
    }
    const view = this.dataView();
    view.setUint32(pointerOut, pointer, true);
    view.setUint32(sizeOut, size, true);
    return OK;
  }

  /** Copies `bytes` into memory the module allocates, and writes its address and size: what Envoy does for every value it returns. */
  returnBytes(bytes, pointerOut, sizeOut) {
    let pointer = 0;
    if (bytes.length > 0) {
      pointer = this.exports.proxy_on_memory_allocate(bytes.length);
      if (pointer === 0) return INVALID_MEMORY_ACCESS;
      this.bytes().set(bytes, pointer);
    }
    const view = this.dataView();
    view.setUint32(pointerOut, pointer, true);
    view.setUint32(sizeOut, bytes.length, true);
    return OK;
  }

  bufferSize(type) {
    return this.buffers.get(type)?.length ?? 0;
  }

  count(name) {
    if (this.calls) this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
    if (this.sequence) this.sequence.push(name);
  }

  /**
   * The host calls and VM entries (`vm entry: NAME`) made while `run()` runs,
   * in order, and the properties set: what a replay probe must repeat.
   */
  traceCalls(run) {
    this.sequence = [];
    this.propertiesSet = [];
    try {
      this.countCalls(run);
      return { sequence: this.sequence, propertiesSet: this.propertiesSet };
    } finally {
      this.sequence = null;
      this.propertiesSet = null;
    }
  }

  /** Counts host calls and VM entries made while `run()` runs. */
  countCalls(run) {
    this.calls = new Map();
    const exports = this.exports;
    const counted = {};
    for (const [name, value] of Object.entries(exports)) {
      counted[name] =
        typeof value === "function"
          ? (...args) => {
              this.count(`vm entry: ${name}`);
              return value(...args);
            }
          : value;
    }
    this.exports = counted;
    try {
      run();
    } finally {
      this.exports = exports;
    }
    const calls = this.calls;
    this.calls = null;
    return calls;
  }

  // ---- imports ----

  imports(module) {
    const env = this.hostFunctions();
    const wasi = this.wasiFunctions();
    const imports = { env: {}, wasi_snapshot_preview1: {} };
    for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
      if (kind !== "function") continue;
      const table = from === "env" ? env : from === "wasi_snapshot_preview1" ? wasi : null;
      const implemented = table?.[name];
      imports[from] ??= {};
      imports[from][name] = implemented
        ? (...args) => {
            if (this.calls) this.count(name);
            return implemented(...args);
          }
        : () => {
            this.unimplemented.add(`${from}.${name}`);
            return from === "wasi_snapshot_preview1" ? WASI_ENOSYS : UNIMPLEMENTED;
          };
    }
    return imports;
  }

  mapOf(type) {
    return this.maps.get(type);
  }

  hostFunctions() {
    return {
      proxy_log: (level, pointer, size) => {
        if (this.logs.length >= this.logLimit) this.logs.shift();
        this.logs.push({ level, message: this.string(pointer, size) });
        return OK;
      },
      proxy_get_log_level: (levelOut) => {
        this.dataView().setUint32(levelOut, this.logLevel, true);
        return OK;
      },
      proxy_get_current_time_nanoseconds: (timeOut) => {
        this.dataView().setBigUint64(timeOut, this.now(), true);
        return OK;
      },
      proxy_set_tick_period_milliseconds: (period) => {
        this.tickPeriodMs = period;
        return OK;
      },
      proxy_get_buffer_bytes: (type, start, maxSize, pointerOut, sizeOut) => {
        const buffer = this.buffers.get(type);
        if (buffer === undefined) return NOT_FOUND;
        // i32 arguments arrive signed: a size of usize::MAX ("all of it") is -1.
        const from = start >>> 0;
        if (from > buffer.length) return BAD_ARGUMENT;
        return this.returnBytes(buffer.subarray(from, from + (maxSize >>> 0)), pointerOut, sizeOut);
      },
      proxy_set_buffer_bytes: (type, start, size, pointer, length) => {
        const buffer = this.buffers.get(type);
        if (buffer === undefined) return NOT_FOUND;
        const bytes = this.copyOut(pointer, length);
        const head = buffer.subarray(0, start);
        const tail = buffer.subarray(Math.min(buffer.length, start + size));
        const result = new Uint8Array(head.length + bytes.length + tail.length);
        result.set(head, 0);
        result.set(bytes, head.length);
        result.set(tail, head.length + bytes.length);
        this.buffers.set(type, result);
        return OK;
      },
      proxy_get_header_map_pairs: (type, pointerOut, sizeOut) => {
        const map = this.mapOf(type);
        if (map === undefined) return NOT_FOUND;
        return this.returnBytes(map.toSerialized(), pointerOut, sizeOut);
      },
      proxy_set_header_map_pairs: (type, pointer, size) => {
        const map = this.mapOf(type);
        if (map === undefined) return NOT_FOUND;
        const pairs = parsePairs(this.copyOut(pointer, size));
        if (pairs === null) return SERIALIZATION_FAILURE;
        map.setAll(pairs.map(([name, value]) => [name.toLowerCase(), value]));
        return OK;
      },
      proxy_get_header_map_size: (type, sizeOut) => {
        const map = this.mapOf(type);
        if (map === undefined) return NOT_FOUND;
        this.dataView().setUint32(sizeOut, map.toSerialized().length, true);
        return OK;
      },
      proxy_get_header_map_value: (type, keyPointer, keySize, pointerOut, sizeOut) => {
        const map = this.mapOf(type);
        if (map === undefined) return NOT_FOUND;
        const value = map.get(this.string(keyPointer, keySize).toLowerCase());
        if (value === undefined) return NOT_FOUND;
        return this.returnString(value, pointerOut, sizeOut);
      },
      proxy_add_header_map_value: (type, keyPointer, keySize, valuePointer, valueSize) => {
        const map = this.mapOf(type);
        if (map === undefined) return NOT_FOUND;
        map.add(this.string(keyPointer, keySize).toLowerCase(), this.string(valuePointer, valueSize));
        return OK;
      },
      proxy_replace_header_map_value: (type, keyPointer, keySize, valuePointer, valueSize) => {
        const map = this.mapOf(type);
        if (map === undefined) return NOT_FOUND;
        map.replace(this.string(keyPointer, keySize).toLowerCase(), this.string(valuePointer, valueSize));
        return OK;
      },
      proxy_remove_header_map_value: (type, keyPointer, keySize) => {
        const map = this.mapOf(type);
        if (map === undefined) return NOT_FOUND;
        map.remove(this.string(keyPointer, keySize).toLowerCase());
        return OK;
      },
      proxy_continue_stream: () => {
        this.continued = true;
        return OK;
      },
      proxy_close_stream: () => OK,
      proxy_send_local_response: (
        status,
        detailsPointer,
        detailsSize,
        bodyPointer,
        bodySize,
        headersPointer,
        headersSize,
        grpcStatus,
      ) => {
        const headers = parsePairs(this.copyOut(headersPointer, headersSize));
        if (headers === null) return SERIALIZATION_FAILURE;
        this.localReply = {
          status,
          details: this.string(detailsPointer, detailsSize),
          body: this.string(bodyPointer, bodySize),
          headers,
          // -1 (as u32 or i32): not a gRPC reply.
          grpcStatus: grpcStatus === -1 || grpcStatus === 0xffffffff ? null : grpcStatus,
        };
        return OK;
      },
      proxy_set_effective_context: (id) => {
        if (!this.contexts.has(id)) return BAD_ARGUMENT;
        this.effective = id;
        return OK;
      },
      proxy_done: () => OK,
      proxy_get_shared_data: (keyPointer, keySize, pointerOut, sizeOut, casOut) => {
        const entry = this.sharedData.get(this.string(keyPointer, keySize));
        if (entry === undefined) return NOT_FOUND;
        const status = this.returnBytes(entry.value, pointerOut, sizeOut);
        this.dataView().setUint32(casOut, entry.cas, true);
        return status;
      },
      proxy_set_shared_data: (keyPointer, keySize, valuePointer, valueSize, cas) => {
        const key = this.string(keyPointer, keySize);
        const entry = this.sharedData.get(key);
        if (cas !== 0 && entry !== undefined && entry.cas !== cas) return CAS_MISMATCH;
        this.sharedData.set(key, { value: this.copyOut(valuePointer, valueSize), cas: ++this.casCounter });
        return OK;
      },
      proxy_define_metric: (type, namePointer, nameSize, idOut) => {
        const name = this.string(namePointer, nameSize);
        let id = this.metricIds.get(name);
        if (id === undefined) {
          id = this.metricIds.size + 1;
          this.metricIds.set(name, id);
          this.metrics.set(id, { name, type, value: 0n });
        }
        this.dataView().setUint32(idOut, id, true);
        return OK;
      },
      proxy_increment_metric: (id, offset) => {
        const metric = this.metrics.get(id);
        if (metric === undefined) return NOT_FOUND;
        metric.value += offset;
        return OK;
      },
      proxy_record_metric: (id, value) => {
        const metric = this.metrics.get(id);
        if (metric === undefined) return NOT_FOUND;
        metric.value = value;
        return OK;
      },
      proxy_get_metric: (id, valueOut) => {
        const metric = this.metrics.get(id);
        if (metric === undefined) return NOT_FOUND;
        this.dataView().setBigUint64(valueOut, BigInt.asUintN(64, metric.value), true);
        return OK;
      },
      proxy_get_property: (pathPointer, pathSize, pointerOut, sizeOut) => {
        // A property path is its segments, each ended by a NUL.
        const path = this.string(pathPointer, pathSize).split("\0").filter(Boolean).join(".");
        const value = this.properties[path];
        if (value === undefined) return NOT_FOUND;
        return this.returnString(value, pointerOut, sizeOut);
      },
      proxy_set_property: (pathPointer, pathSize, valuePointer, valueSize) => {
        // Kept only while tracing: a timed request pays no copy.
        this.propertiesSet?.push([this.string(pathPointer, pathSize), this.string(valuePointer, valueSize)]);
        return OK;
      },
      proxy_http_call: (
        upstreamPointer,
        upstreamSize,
        headersPointer,
        headersSize,
        bodyPointer,
        bodySize,
        trailersPointer,
        trailersSize,
        timeoutMs,
        tokenOut,
      ) => {
        const headers = parsePairs(this.copyOut(headersPointer, headersSize));
        if (headers === null) return SERIALIZATION_FAILURE;
        const token = this.nextCallToken++;
        this.httpCalls.set(token, {
          upstream: this.string(upstreamPointer, upstreamSize),
          headers,
          body: this.string(bodyPointer, bodySize),
          timeoutMs,
        });
        this.dataView().setUint32(tokenOut, token, true);
        return OK;
      },
      proxy_call_foreign_function: (namePointer, nameSize, argumentsPointer, argumentsSize, pointerOut, sizeOut) => {
        const call = this.foreignFunctions[this.string(namePointer, nameSize)];
        if (call === undefined) return NOT_FOUND;
        const result = call(this.copyOut(argumentsPointer, argumentsSize));
        if (result === null) return BAD_ARGUMENT;
        return this.returnBytes(result, pointerOut, sizeOut);
      },
    };
  }

  wasiFunctions() {
    return {
      random_get: (pointer, size) => {
        crypto.getRandomValues(this.bytes().subarray(pointer, pointer + size));
        return 0;
      },
      environ_sizes_get: (countOut, sizeOut) => {
        const view = this.dataView();
        view.setUint32(countOut, 0, true);
        view.setUint32(sizeOut, 0, true);
        return 0;
      },
      environ_get: () => 0,
      clock_time_get: (_clock, _precision, timeOut) => {
        this.dataView().setBigUint64(timeOut, this.now(), true);
        return 0;
      },
      // Rust's std writes a panic message to stderr before it aborts; keep it as a log line.
      fd_write: (fd, iovs, iovsLength, writtenOut) => {
        const view = this.dataView();
        let written = 0;
        let text = "";
        for (let index = 0; index < iovsLength; index++) {
          const pointer = view.getUint32(iovs + 8 * index, true);
          const length = view.getUint32(iovs + 8 * index + 4, true);
          text += this.string(pointer, length);
          written += length;
        }
        this.logs.push({ level: fd === 2 ? 4 : 2, message: text });
        view.setUint32(writtenOut, written, true);
        return 0;
      },
      proc_exit: (code) => {
        throw new Error(`the module exited (proc_exit ${code})`);
      },
    };
  }
}
