'use strict';
// Node.js function runtime bootstrap (started by /opt/faas/entry.sh in the nodejs-base image).
//
// Speaks the line-based JSON protocol described in docker/README.md with the worker. entry.sh
// has already moved the protocol streams away from the standard fds:
//   fd 4: frames in (original stdin)    fd 3: frames out (original stdout)
//   fd 5: bootstrap diagnostics (original stderr)
//   fds 1 and 2: /tmp/.faas-log-<pid>, the log capture (console.*, process.stdout/stderr,
//   child processes); fd 0: /dev/null.
// Everything the function prints lands in the "logs" field of the next frame and can never
// corrupt the protocol stream. Runs on Node 18 and newer; CommonJS and ES modules (code that
// does not compile as CommonJS for its import/export/top-level await is imported as one).
//
// The log file lives on the /tmp tmpfs, whose pages count against the container's memory
// limit, so it is kept small: once it is over TRIM_AT bytes its last LOG_CAP bytes are kept
// in memory and it is emptied. It is checked after every 256 KiB written through
// process.stdout/stderr (console.*), and by a timer (every 50 ms while the function runs,
// every 2 s between calls) for what child processes and raw fd writes add.

const fs = require('fs');
// Our own references: the function's code may wrap or replace these on the fs module.
const { writeSync, readSync, fstatSync, ftruncateSync, openSync, unlinkSync } = fs;

const PROTO_OUT = 3;
const PROTO_IN = 4;
const DIAG = 5;
const LOG_CAP = 256 * 1024; // bytes of logs kept per frame (the LAST ones)
const TEXT_CAP = 64 * 1024; // characters kept of error.message / error.stack
const TRIM_AT = 1024 * 1024; // the log file is trimmed once it is bigger than this
const TRIM_CHECK_BYTES = 256 * 1024;
const TRIM_POLL_BUSY_MS = 50;
// Hundreds of idle containers must not wake up several times a second each (costly under gVisor).
const TRIM_POLL_IDLE_MS = 2000;
const CODE_DIR = '/tmp/function';
// Where the worker mounts a function's built dependencies (DESIGN §12).
const DEPS_NODE_MODULES = '/opt/faas/deps/node_modules';
const CODE_FILE = CODE_DIR + '/handler.js';
const BOOT_FILE = __filename;

const realExit = process.exit.bind(process);
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

let diagFd = 2;
let logFd = -1;
let logSaved = null; // last LOG_CAP bytes of what trimLog() took out of the file since the last frame
let logDropped = false; // whether trimLog() emptied the file since the last frame
let writtenSinceCheck = 0;
let trimTimer = null;
let inStream = null;
let handler = null;
let handlerThis = null;
// Bytes of JSON a result may hold; the init frame's limits.result_bytes says how many.
let resultLimit = 6 * 1024 * 1024;
let initialized = false;
let loading = false;
let eof = false;
// The invocation in flight: { id, done, callbackStyle, pending (a callback's [ok, value] waiting
// for the event loop to empty), settle(ok, value) }.
let current = null;
const queue = []; // complete lines not handled yet
let partial = []; // pieces of the line being received

// ---------------------------------------------------------------------------
// plumbing

function fatal(msg, code = 2) {
  try {
    writeSync(diagFd, `faas bootstrap: ${msg}\n`);
  } catch (_) {
    // nothing left to tell it to
  }
  realExit(code);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function sendRaw(text) {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(PROTO_OUT, buf, off, buf.length - off);
    } catch (e) {
      if (e && e.code === 'EAGAIN') {
        Atomics.wait(sleeper, 0, 0, 1); // non-blocking pipe is full: wait for the worker to read
        continue;
      }
      fatal(`writing a frame to stdout failed: ${e && e.message}`);
    }
  }
}

function wellFormed(s) {
  return s.replace(LONE_SURROGATES, '\ufffd');
}

function cap(s) {
  s = wellFormed(s);
  return s.length > TEXT_CAP ? s.slice(0, TEXT_CAP) + '\n[... truncated]' : s;
}

function setupLog() {
  const path = `/tmp/.faas-log-${process.pid}`;
  try {
    logFd = openSync(path, 'r+'); // opened by libuv with O_CLOEXEC
    unlinkSync(path); // user code cannot delete, replace or read it behind our back
  } catch (e) {
    fatal(`cannot open the log capture file ${path} (was node started by entry.sh?): ${e.message}`);
  }
}

// The last LOG_CAP bytes of the log file, and its size.
function readTail() {
  const size = fstatSync(logFd).size;
  const offset = Math.max(0, size - LOG_CAP);
  const want = size - offset;
  const buf = Buffer.allocUnsafe(want);
  let got = 0;
  while (got < want) {
    const n = readSync(logFd, buf, got, want - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return { data: buf.subarray(0, got), size };
}

// Keep the log file small (see the top of this file).
function trimLog() {
  writtenSinceCheck = 0;
  try {
    if (fstatSync(logFd).size <= TRIM_AT) return;
    logSaved = readTail().data;
    ftruncateSync(logFd, 0); // fds 1/2 are O_APPEND: the next write goes to offset 0
    logDropped = true;
  } catch (_) {
    // collectLogs() reports problems with the file
  }
}

function armTrimTimer(ms) {
  if (trimTimer !== null) clearTimeout(trimTimer);
  trimTimer = setTimeout(() => {
    trimLog();
    armTrimTimer(current !== null ? TRIM_POLL_BUSY_MS : TRIM_POLL_IDLE_MS);
  }, ms);
  trimTimer.unref(); // never keeps the process alive
}

function watchStdio() {
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write;
    stream.write = function write_(chunk) {
      const r = Reflect.apply(write, this, arguments);
      writtenSinceCheck += (chunk && chunk.length) || 0;
      if (writtenSinceCheck >= TRIM_CHECK_BYTES) trimLog();
      return r;
    };
  }
  armTrimTimer(TRIM_POLL_IDLE_MS);
}

// Everything written to fds 1/2 since the last frame (the last LOG_CAP bytes), then empty the file.
function collectLogs() {
  let truncated;
  let data;
  try {
    const tail = readTail();
    data = tail.data;
    truncated = tail.size > LOG_CAP || logDropped;
    if (logDropped && data.length < LOG_CAP) {
      const need = LOG_CAP - data.length;
      data = Buffer.concat([logSaved.subarray(Math.max(0, logSaved.length - need)), data]);
    }
    logSaved = null;
    logDropped = false;
    ftruncateSync(logFd, 0);
  } catch (e) {
    return { logs: `[faas: reading logs failed: ${e && e.message}]`, truncated: false };
  }
  if (truncated) {
    let i = 0; // don't start in the middle of a UTF-8 sequence
    while (i < 3 && i < data.length && (data[i] & 0xc0) === 0x80) i++;
    data = data.subarray(i);
  }
  return { logs: data.toString('utf8'), truncated };
}

function cleanStack(stack) {
  // Frames are listed innermost first: from the first bootstrap frame on, it is the bootstrap
  // (and the Node internals that called it), not the function.
  const lines = stack.split('\n');
  const i = lines.findIndex((l) => l.trimStart().startsWith('at ') && l.includes(BOOT_FILE));
  return (i === -1 ? lines : lines.slice(0, i)).join('\n');
}

function describe(v) {
  try {
    return require('util').inspect(v, { depth: 3, breakLength: Infinity });
  } catch (_) {
    return '<uninspectable value>';
  }
}

// {type, message, stack} for anything thrown or rejected with.
function errorInfo(e) {
  let type = 'Error';
  let message;
  let stack;
  try {
    const isErrorLike =
      e instanceof Error ||
      (e !== null && typeof e === 'object' && typeof e.message === 'string' && typeof e.stack === 'string');
    if (isErrorLike) {
      if (typeof e.name === 'string' && e.name) type = e.name;
      message = String(e.message);
      stack = typeof e.stack === 'string' ? cleanStack(e.stack) : `${type}: ${message}`;
    } else {
      message = typeof e === 'string' ? e : describe(e);
      stack = `${type}: ${message}`;
    }
  } catch (_) {
    if (message === undefined) message = '<unprintable error>';
    stack = `${type}: ${message}`;
  }
  return { type: cap(type), message: cap(message), stack: cap(stack) };
}

function runtimeError(type, message, below) {
  const e = new Error(message);
  e.name = type;
  if (below) Error.captureStackTrace(e, below); // the stack starts at below's caller
  return e;
}

// JSON text of a handler result; throws when it cannot be sent.
function marshal(v) {
  if (v === undefined) return 'null';
  const text = JSON.stringify(v);
  if (text === undefined) return 'null'; // functions, symbols
  if (text.includes('\\ud')) {
    // JSON.stringify escapes unpaired surrogates as \udXXX, which strict JSON parsers
    // (e.g. serde_json) reject: look for real ones.
    JSON.stringify(v, (k, x) => {
      if (LONE_SURROGATE.test(k) || (typeof x === 'string' && LONE_SURROGATE.test(x))) {
        throw new TypeError('a string contains an unpaired UTF-16 surrogate');
      }
      return x;
    });
  }
  return text;
}

// ---------------------------------------------------------------------------
// the function

function applyEnv(env) {
  for (const k of Object.keys(env)) {
    const v0 = env[k];
    const v = typeof v0 === 'string' ? v0 : v0 == null ? '' : JSON.stringify(v0);
    if (!k || k.includes('=') || k.includes('\0') || v.includes('\0')) {
      throw new Error(`invalid environment variable name or value: ${JSON.stringify(k)}`);
    }
    process.env[k] = v;
  }
}

function isIdentifier(name) {
  if (!/^[A-Za-z_$][\w$]*$/.test(name)) return false;
  try {
    new Function(`var ${name};`); // rejects reserved words
    return true;
  } catch (_) {
    return false;
  }
}

// The handler named `attr` of a loaded module's exports (CommonJS `module.exports`, or an ES
// module's namespace, whose `default` export may be the handler or hold it); returns
// { handler, thisArg } or { error }.
function findHandler(exp, attr, esm) {
  let holder = exp;
  let fn = exp == null ? undefined : exp[attr];
  if (fn == null && esm && exp.default != null) {
    if (typeof exp.default === 'function' && attr === 'handler') {
      fn = exp.default;
    } else if (typeof exp.default === 'object') {
      holder = exp.default;
      fn = holder[attr];
    }
  }
  if (fn == null) {
    const where = esm ? `export const ${attr} / export function ${attr}` : `module.exports.${attr}`;
    return {
      error: {
        type: 'Runtime.HandlerNotFound',
        message: cap(`handler '${attr}' is neither exported (${where}) nor declared in the function code`),
        stack: '',
      },
    };
  }
  if (typeof fn !== 'function') {
    return {
      error: {
        type: 'Runtime.HandlerNotFound',
        message: cap(`handler '${attr}' is not a function (it is a ${typeof fn})`),
        stack: '',
      },
    };
  }
  return { handler: fn, thisArg: holder };
}

// Whether a SyntaxError from compiling the code as CommonJS says it is an ES module.
function isEsmSyntax(e) {
  return (
    e instanceof SyntaxError &&
    /Cannot use import statement|Unexpected token 'export'|await is only valid|import\.meta|Cannot use 'import\.meta'/.test(e.message)
  );
}

// Compiles and runs the code as a CommonJS module (/tmp/function/handler.js); returns
// { handler, thisArg }, { error }, or { esm: true } when its syntax says it is an ES module.
function loadCommonJs(code, handlerName) {
  const Module = require('module');
  // "handler" or, AWS-style, "index.handler": the export is the part after the last dot.
  const attr = handlerName.split('.').pop();
  let src = code.charCodeAt(0) === 0xfeff ? code.slice(1) : code;
  if (isIdentifier(attr)) {
    // Also accept a top-level `function handler` / `const handler = ...` that was not exported.
    src +=
      `\n;if (typeof ${attr} === 'function' && module.exports != null && ` +
      `typeof module.exports.${attr} !== 'function') module.exports.${attr} = ${attr};\n`;
  }
  const m = new Module(CODE_FILE, null);
  m.filename = CODE_FILE;
  m.paths = Module._nodeModulePaths(CODE_DIR);
  Module._cache[CODE_FILE] = m;
  try {
    // 'commonjs': on Node 22 don't let syntax detection turn the code into an ES module.
    // A SyntaxError is thrown before any of the code runs, so trying ESM next runs it once.
    m._compile(src, CODE_FILE, 'commonjs');
    m.loaded = true;
  } catch (e) {
    delete Module._cache[CODE_FILE];
    if (isEsmSyntax(e)) return { esm: true };
    return { error: errorInfo(e) };
  }
  return findHandler(m.exports, attr, false);
}

// Writes the code to /tmp/function/handler.mjs and imports it as an ES module (top-level await
// included); resolves to { handler, thisArg } or { error }.
async function loadEsm(code, handlerName) {
  const attr = handlerName.split('.').pop();
  const file = CODE_DIR + '/handler.mjs';
  try {
    fs.mkdirSync(CODE_DIR, { recursive: true });
    fs.writeFileSync(file, code);
    // ES modules ignore NODE_PATH: the function's dependencies (mounted read-only by the
    // worker) are found through a node_modules beside the module instead.
    if (fs.existsSync(DEPS_NODE_MODULES) && !fs.existsSync(CODE_DIR + '/node_modules')) {
      fs.symlinkSync(DEPS_NODE_MODULES, CODE_DIR + '/node_modules');
    }
  } catch (e) {
    return { error: errorInfo(e) };
  }
  return importHandler(file, attr);
}

// Imports the ES module at `path` and finds its handler `attr`; resolves to
// { handler, thisArg } or { error }.
async function importHandler(path, attr) {
  let ns;
  try {
    ns = await import(require('url').pathToFileURL(path).href);
  } catch (e) {
    return { error: errorInfo(e) };
  }
  return findHandler(ns, attr, true);
}

// Loads the handler from a deployment package, as Lambda does from its task root: `file.name`
// names file.js, file.mjs or file.cjs there; .mjs is an ES module, .cjs CommonJS, and .js is
// whatever Node makes of it (CommonJS unless the package's package.json says "type": "module").
// Resolves to { handler, thisArg } or { error }.
async function loadPackage(dir, handlerName) {
  const cut = handlerName.lastIndexOf('.');
  const file = handlerName.slice(0, cut);
  const attr = handlerName.slice(cut + 1);
  if (process.env.LAMBDA_TASK_ROOT === undefined) process.env.LAMBDA_TASK_ROOT = dir;
  try {
    process.chdir(dir);
  } catch (e) {
    // The mount is there or the worker would not have started the container; carry on.
  }
  const path = ['.js', '.mjs', '.cjs'].map((ext) => `${dir}/${file}${ext}`).find((p) => fs.existsSync(p));
  if (path === undefined) {
    return {
      error: {
        type: 'Runtime.ImportModuleError',
        message: cap(`Cannot find module '${file}': the package has no ${file}.js, ${file}.mjs or ${file}.cjs`),
        stack: '',
      },
    };
  }
  if (!path.endsWith('.mjs')) {
    try {
      return findHandler(require(path), attr, false);
    } catch (e) {
      if (e.code !== 'ERR_REQUIRE_ESM') return { error: errorInfo(e) };
    }
  }
  return importHandler(path, attr);
}

// The context as AWS's Node.js runtime gives it (memoryLimitInMB and functionVersion are
// strings there), plus invocationId and deadlineUnixMs; the legacy succeed/fail/done settle
// `call` as the callback does.
function makeContext(c, call) {
  const deadline = c.deadline_unix_ms;
  const str = (v) => (v == null ? null : String(v));
  return {
    invocationId: c.invocation_id ?? null,
    awsRequestId: c.invocation_id ?? null,
    functionName: c.function_name ?? null,
    functionVersion: str(c.function_version),
    invokedFunctionArn: c.invoked_function_arn ?? null,
    memoryLimitInMB: str(c.memory_mb),
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME ?? null,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME ?? null,
    deadlineUnixMs: deadline ?? null,
    // 1-based; above 1 only for a retried async call.
    attempt: Number.isSafeInteger(c.attempt) && c.attempt > 0 ? c.attempt : 1,
    identity: undefined,
    clientContext: undefined,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis() {
      return typeof deadline === 'number' ? Math.max(0, Math.floor(deadline - Date.now())) : 0;
    },
    succeed(result) {
      call.settle(true, result);
    },
    fail(err) {
      call.settle(false, err == null ? runtimeError('Error', 'context.fail() called') : err);
    },
    done(err, result) {
      if (err !== undefined && err !== null) call.settle(false, err);
      else call.settle(true, result);
    },
  };
}

function finishCall(call, ok, value) {
  let resultText;
  let error;
  if (ok) {
    try {
      resultText = marshal(value);
    } catch (e) {
      ok = false;
      const why = e && typeof e === 'object' ? `${e.name}: ${e.message}` : String(e);
      error = { type: 'Runtime.MarshalError', message: cap(`the handler's result cannot be sent as JSON: ${why}`), stack: '' };
    }
    if (ok) {
      const size = Buffer.byteLength(resultText, 'utf8');
      if (size > resultLimit) {
        ok = false;
        resultText = undefined;
        error = {
          type: 'Runtime.ResultTooLarge',
          message: `the function's result is ${size} bytes of JSON, over the limit of ${resultLimit} bytes (6 MiB)`,
          stack: '',
        };
      }
    }
  } else {
    error = errorInfo(value);
  }
  const { logs, truncated } = collectLogs();
  const head = `{"op":"result","id":${JSON.stringify(wellFormed(call.id))}`;
  const tail = `,"logs":${JSON.stringify(logs)},"logs_truncated":${truncated}}\n`;
  sendRaw(ok ? `${head},"ok":true,"result":${resultText}${tail}` : `${head},"ok":false,"error":${JSON.stringify(error)}${tail}`);
  if (inStream && typeof inStream.ref === 'function') inStream.ref();
  setImmediate(pump);
}

function startInvoke(frame) {
  if (typeof frame.id !== 'string') fatal('malformed invoke frame: "id" must be a string');
  const ctxIn = frame.context !== null && typeof frame.context === 'object' ? frame.context : {};
  const event = frame.event === undefined ? null : frame.event;
  const call = { id: frame.id, done: false, callbackStyle: false };
  call.settle = (ok, value) => {
    if (call.done) return;
    call.done = true;
    if (current === call) current = null;
    finishCall(call, ok, value);
  };
  current = call;
  armTrimTimer(TRIM_POLL_BUSY_MS);
  // While a call runs, the protocol input must not keep the event loop alive: if the loop
  // runs dry the handler can never finish ('beforeExit' below turns that into a result).
  if (inStream && typeof inStream.unref === 'function') inStream.unref();
  const context = makeContext(ctxIn, call);
  // As on AWS: with context.callbackWaitsForEmptyEventLoop (the default) the callback's result
  // is sent once the event loop has nothing left to run ('beforeExit' below); set to false, at
  // once, and what is still pending runs on in the warm container.
  const callback = (err, result) => {
    if (call.done || call.pending) return;
    const outcome = err !== undefined && err !== null ? [false, err] : [true, result];
    if (context.callbackWaitsForEmptyEventLoop === false) call.settle(...outcome);
    else call.pending = outcome;
  };
  try {
    const r = Reflect.apply(handler, handlerThis, [event, context, callback]);
    if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') {
      // A callback called before the promise settles wins, as it did before it waited.
      Promise.resolve(r).then(
        (v) => (call.pending ? call.settle(...call.pending) : call.settle(true, v)),
        (e) => (call.pending ? call.settle(...call.pending) : call.settle(false, e)),
      );
    } else if (handler.length >= 3) {
      call.callbackStyle = true; // the result comes through the callback
    } else {
      call.settle(true, r);
    }
  } catch (e) {
    call.settle(false, e);
  }
}

// The AWS_LAMBDA_* variables of the function (from the init frame's `function`), where the
// function's own env does not set them.
function lambdaEnv(fn, env) {
  if (fn === null || typeof fn !== 'object') return;
  const vars = {
    AWS_LAMBDA_FUNCTION_NAME: fn.name,
    AWS_LAMBDA_FUNCTION_VERSION: fn.version,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: fn.memory_mb,
    AWS_LAMBDA_LOG_GROUP_NAME: fn.log_group_name,
    AWS_LAMBDA_LOG_STREAM_NAME: fn.log_stream_name,
  };
  for (const [k, v] of Object.entries(vars)) {
    if (v != null && !Object.prototype.hasOwnProperty.call(env, k)) process.env[k] = String(v);
  }
}

function finishInit(res) {
  loading = false;
  const { logs } = collectLogs();
  if (res.error) {
    sendRaw(JSON.stringify({ op: 'init_error', error: res.error, logs }) + '\n');
    realExit(1);
  }
  handler = res.handler;
  handlerThis = res.thisArg;
  initialized = true;
  sendRaw(JSON.stringify({ op: 'ready', logs }) + '\n');
  if (inStream && typeof inStream.ref === 'function') inStream.ref();
  setImmediate(pump);
}

function doInit(frame) {
  const code = frame.code;
  const handlerName = frame.handler === undefined ? 'handler' : frame.handler;
  const env = frame.env == null ? {} : frame.env;
  const limits = frame.limits && typeof frame.limits === 'object' ? frame.limits : {};
  if (Number.isSafeInteger(limits.result_bytes) && limits.result_bytes > 0) resultLimit = limits.result_bytes;
  if (typeof code !== 'string' || typeof handlerName !== 'string' || typeof env !== 'object' || Array.isArray(env)) {
    fatal('malformed init frame: needs string "code", string "handler" and object "env"');
  }
  try {
    applyEnv(env);
    lambdaEnv(frame.function, env);
  } catch (e) {
    const error = { type: 'Runtime.InvalidEnvironment', message: cap(e.message), stack: '' };
    sendRaw(JSON.stringify({ op: 'init_error', error, logs: '' }) + '\n');
    realExit(1);
  }
  loading = true;
  if (typeof frame.package_dir === 'string' && frame.package_dir !== '') {
    if (inStream && typeof inStream.unref === 'function') inStream.unref();
    loadPackage(frame.package_dir, handlerName).then(finishInit, (e) => finishInit({ error: errorInfo(e) }));
    return;
  }
  const res = loadCommonJs(code, handlerName);
  if (!res.esm) {
    finishInit(res);
    return;
  }
  // An ES module loads asynchronously; no frame is handled until it has. The protocol input
  // must not keep the loop alive meanwhile: a top-level await that can never settle ends in
  // 'beforeExit', which reports it.
  if (inStream && typeof inStream.unref === 'function') inStream.unref();
  loadEsm(code, handlerName).then(finishInit, (e) => finishInit({ error: errorInfo(e) }));
}

function handleLine(buf) {
  const text = buf.toString('utf8');
  if (text.trim() === '') return;
  let frame;
  try {
    frame = JSON.parse(text);
  } catch (e) {
    fatal(`malformed frame (not JSON: ${e.message}): ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
    fatal(`malformed frame (not a JSON object): ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (!initialized) {
    if (frame.op !== 'init') fatal(`expected an init frame first, got op ${JSON.stringify(frame.op)}`);
    doInit(frame);
  } else if (frame.op === 'invoke') {
    startInvoke(frame);
  } else {
    fatal(`unexpected frame op ${JSON.stringify(frame.op)} (expected "invoke")`);
  }
}

function pump() {
  while (current === null && !loading && queue.length > 0) handleLine(queue.shift());
  if (current === null && queue.length === 0 && eof) realExit(0);
}

function onData(chunk) {
  let start = 0;
  let nl;
  while ((nl = chunk.indexOf(10, start)) !== -1) {
    const piece = chunk.subarray(start, nl);
    if (partial.length > 0) {
      partial.push(piece);
      queue.push(Buffer.concat(partial));
      partial = [];
    } else {
      queue.push(piece);
    }
    start = nl + 1;
  }
  if (start < chunk.length) partial.push(chunk.subarray(start));
  pump();
}

function onEnd() {
  if (partial.length > 0) {
    queue.push(Buffer.concat(partial)); // a last frame without '\n'
    partial = [];
  }
  eof = true;
  pump();
}

function onAsyncError(err, what) {
  if (current !== null) {
    current.settle(false, err);
    return;
  }
  // Between calls: report it in the logs of the next call and carry on.
  try {
    const info = errorInfo(err);
    writeSync(2, `faas: ${what} outside an invocation: ${info.stack || info.message}\n`);
  } catch (_) {
    // ignore
  }
}

function main() {
  for (const fd of [PROTO_OUT, PROTO_IN, DIAG]) {
    try {
      fstatSync(fd);
    } catch (_) {
      fatal(`fd ${fd} is not open: start the bootstrap through /opt/faas/entry.sh`);
    }
  }
  diagFd = DIAG;
  setupLog();
  watchStdio();

  process.on('uncaughtException', (err) => onAsyncError(err, 'uncaught exception'));
  process.on('unhandledRejection', (reason) => onAsyncError(reason, 'unhandled promise rejection'));
  process.on('beforeExit', () => {
    if (loading) {
      finishInit({ error: errorInfo(runtimeError('Runtime.HandlerNeverCompleted', "the module's top-level await never settled and nothing was left to run")) });
      return;
    }
    // The event loop ran dry while a call was in flight: nothing can settle it any more.
    if (current === null) return;
    if (current.pending) current.settle(...current.pending);
    else if (current.callbackStyle) current.settle(true, null); // callback never called: null (as on AWS)
    else current.settle(false, runtimeError('Runtime.HandlerNeverCompleted', "the handler's promise never settled and nothing was left to run"));
  });
  // process.exit() from the function: report it as the call's (or init's) error, then exit.
  process.exit = function exit(code) {
    const c = code === undefined ? process.exitCode : code;
    const what = `process.exit(${c === undefined ? '' : c}) called`;
    if (current !== null) {
      current.settle(false, runtimeError('Runtime.ExitError', what, exit));
    } else if (loading) {
      const error = errorInfo(runtimeError('Runtime.ExitError', what + ' while loading', exit));
      sendRaw(JSON.stringify({ op: 'init_error', error, logs: collectLogs().logs }) + '\n');
    }
    return realExit(code);
  };

  let st;
  try {
    st = fstatSync(PROTO_IN);
  } catch (e) {
    fatal(`fd ${PROTO_IN}: ${e.message}`);
  }
  if (st.isFIFO() || st.isSocket()) {
    inStream = new (require('net').Socket)({ fd: PROTO_IN, readable: true, writable: false });
  } else {
    inStream = fs.createReadStream(null, { fd: PROTO_IN, highWaterMark: 1 << 16 });
  }
  inStream.on('data', onData);
  inStream.on('end', onEnd);
  inStream.on('error', (e) => fatal(`reading stdin failed: ${e.message}`));
}

main();
