#!/usr/bin/env node
// Command-line harness around the AWS Encryption SDK for JavaScript
// (@aws-crypto/client-node, pinned in package.json). kmsd's end-to-end tests use it as an
// independent implementation of the AWS Encryption SDK message format.
//
//   node esdk.js encrypt [options] < plaintext > message
//   node esdk.js decrypt [options] < message > plaintext
//   node esdk.js bench --in FILE [--decrypt] [options]
//
// Run `node esdk.js help` for the options. On failure it prints one line
// "esdk.js: <message>" to stderr and exits 1. Decrypt buffers the plaintext and writes it
// to stdout only after the whole message (including any signature) has been verified.
'use strict';

const fs = require('fs');
const crypto = require('crypto');
const { spawn } = require('child_process');
const { Readable, Transform, Writable } = require('stream');
const { pipeline } = require('stream/promises');

const USAGE = `usage:
  node esdk.js encrypt [options] < plaintext > message
  node esdk.js decrypt [options] < message > plaintext
  node esdk.js bench --in FILE [--decrypt] [options]
options:
  --policy require-require|require-allow|forbid-allow   commitment policy (default require-require)
  --suite HEX          algorithm suite id for encrypt, e.g. 0478, 0578, 0378
                       (default 0478; 0378 under forbid-allow)
  --frame N            frame length in bytes for encrypt (default 4096)
  --aes NS/NAME:KEYFILE            raw AES keyring; KEYFILE holds 16, 24 or 32 raw bytes
  --rsa NS/NAME:PEMFILE:PADDING    raw RSA keyring; PADDING oaep-sha1|oaep-sha256|oaep-sha384|
                                   oaep-sha512|pkcs1
                       the first keyring is the generator, further ones are children of a
                       MultiKeyringNode (in the order given)
  --context K=V        encrypt: add to the encryption context; decrypt: require this pair in
                       the message's encryption context (repeatable)
  --context-out FILE   decrypt: write the message's encryption context as JSON
  --header-out FILE    decrypt: write the parsed message header as JSON
  --max-edks N         maxEncryptedDataKeys (encrypt and decrypt)
  --unsigned-only      decrypt: use decryptUnsignedMessageStream (refuse signed suites)
  --in FILE            bench: input file
  --decrypt            bench: time decryption (of a message first encrypted to memory)`;

const REEXEC_ENV = 'ESDK_JS_PKCS1_REEXEC';
const REVERT_FLAG = '--security-revert=CVE-2023-46809';

class UsageError extends Error {}

function fail(err) {
  let msg = err && err.message ? err.message : String(err);
  msg = msg.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error';
  try {
    fs.writeSync(2, `esdk.js: ${msg}\n`);
  } catch (_) {
    // nothing left to do
  }
  process.exit(1);
}

process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

function parseArgs(argv) {
  const opts = {
    command: argv[0],
    policy: 'require-require',
    suite: undefined,
    frame: undefined,
    keyrings: [],
    context: [],
    contextOut: undefined,
    headerOut: undefined,
    maxEdks: undefined,
    unsignedOnly: false,
    inFile: undefined,
    benchDecrypt: false,
  };
  const need = (i, name) => {
    if (i >= argv.length) throw new UsageError(`option ${name} needs a value`);
    return argv[i];
  };
  // "--name=value" is read as "--name value".
  argv = argv.flatMap((arg, i) => {
    const eq = arg.indexOf('=');
    return i > 0 && arg.startsWith('--') && eq > 2 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg];
  });
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--policy': opts.policy = need(++i, a); break;
      case '--suite': opts.suite = need(++i, a); break;
      case '--frame': opts.frame = need(++i, a); break;
      case '--aes': opts.keyrings.push({ kind: 'aes', spec: need(++i, a) }); break;
      case '--rsa': opts.keyrings.push({ kind: 'rsa', spec: need(++i, a) }); break;
      case '--context': opts.context.push(need(++i, a)); break;
      case '--context-out': opts.contextOut = need(++i, a); break;
      case '--header-out': opts.headerOut = need(++i, a); break;
      case '--max-edks': opts.maxEdks = need(++i, a); break;
      case '--unsigned-only': opts.unsignedOnly = true; break;
      case '--in': opts.inFile = need(++i, a); break;
      case '--decrypt': opts.benchDecrypt = true; break;
      default: throw new UsageError(`unknown option ${JSON.stringify(a)}`);
    }
  }
  return opts;
}

function parsePositiveInt(text, name) {
  if (!/^[0-9]+$/.test(String(text))) throw new UsageError(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

const POLICIES = {
  'require-require': 'REQUIRE_ENCRYPT_REQUIRE_DECRYPT',
  'require-allow': 'REQUIRE_ENCRYPT_ALLOW_DECRYPT',
  'forbid-allow': 'FORBID_ENCRYPT_ALLOW_DECRYPT',
};

const OAEP = {
  'oaep-sha1': 'sha1',
  'oaep-sha256': 'sha256',
  'oaep-sha384': 'sha384',
  'oaep-sha512': 'sha512',
};

// "NS/NAME:REST" -> [NS, NAME, REST]: the namespace ends at the first '/', the key name at
// the first ':' after it; REST is everything after that.
function splitKeySpec(spec, what) {
  const slash = spec.indexOf('/');
  const colon = slash < 0 ? -1 : spec.indexOf(':', slash + 1);
  if (slash <= 0 || colon < 0 || colon === slash + 1 || colon === spec.length - 1) {
    throw new UsageError(`bad ${what} keyring spec ${JSON.stringify(spec)}`);
  }
  return [spec.slice(0, slash), spec.slice(slash + 1, colon), spec.slice(colon + 1)];
}

function parseRsaSpec(spec) {
  const [keyNamespace, keyName, rest] = splitKeySpec(spec, '--rsa');
  const colon = rest.lastIndexOf(':');
  if (colon <= 0 || colon === rest.length - 1) {
    throw new UsageError(`bad --rsa keyring spec ${JSON.stringify(spec)} (want NS/NAME:PEMFILE:PADDING)`);
  }
  const padding = rest.slice(colon + 1);
  if (padding !== 'pkcs1' && !(padding in OAEP)) {
    throw new UsageError(`unknown RSA padding ${JSON.stringify(padding)} (want oaep-sha1, oaep-sha256, oaep-sha384, oaep-sha512 or pkcs1)`);
  }
  return { keyNamespace, keyName, file: rest.slice(0, colon), padding };
}

function usesPkcs1(opts) {
  return opts.keyrings.some((k) => k.kind === 'rsa' && parseRsaSpec(k.spec).padding === 'pkcs1');
}

// Node 20 refuses RSA PKCS#1 v1.5 private decryption (CVE-2023-46809, Marvin attack) unless
// its OpenSSL has implicit rejection or node runs with --security-revert=CVE-2023-46809.
function pkcs1DecryptAllowed() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
  const padding = crypto.constants.RSA_PKCS1_PADDING;
  const ct = crypto.publicEncrypt({ key: publicKey, padding }, Buffer.alloc(16, 7));
  try {
    crypto.privateDecrypt({ key: privateKey, padding }, ct);
    return true;
  } catch (e) {
    if (/CVE-2023-46809/.test(e.message)) return false;
    throw e;
  }
}

// Node prints this line on stdout at start-up when --security-revert is given.
const REVERT_WARNING = 'SECURITY WARNING: Reverting CVE-2023-46809: Marvin attack on PKCS#1 padding\n';

function stripPrefix(prefix) {
  const want = Buffer.from(prefix);
  let head = Buffer.alloc(0);
  let decided = false;
  const decide = (t) => {
    decided = true;
    t.push(head.subarray(0, want.length).equals(want) ? head.subarray(want.length) : head);
  };
  return new Transform({
    transform(chunk, _enc, cb) {
      if (decided) return cb(null, chunk);
      head = Buffer.concat([head, chunk]);
      if (head.length >= want.length || !want.subarray(0, head.length).equals(head)) decide(this);
      cb();
    },
    flush(cb) {
      if (!decided) decide(this);
      cb();
    },
  });
}

function reexecWithPkcs1Revert() {
  const args = [REVERT_FLAG, __filename, ...process.argv.slice(2)];
  const child = spawn(process.execPath, args, {
    stdio: ['inherit', 'pipe', 'pipe'],
    env: { ...process.env, [REEXEC_ENV]: '1' },
  });
  let stderrText = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderrText += d; });
  child.on('error', fail);
  const stdoutDone = pipeline(child.stdout, stripPrefix(REVERT_WARNING), process.stdout, { end: false });
  const exited = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return Promise.all([stdoutDone, exited]).then(([, { code, signal }]) => {
    for (const line of stderrText.split('\n')) {
      if (line === '' || line.startsWith('SECURITY WARNING: Reverting CVE-2023-46809')) continue;
      fs.writeSync(2, line + '\n');
    }
    if (signal) throw new Error(`child killed by ${signal}`);
    return code === null ? 1 : code;
  });
}

function loadSdk() {
  try {
    return require('@aws-crypto/client-node');
  } catch (e) {
    throw new Error(`cannot load @aws-crypto/client-node (run npm ci next to esdk.js): ${e.message}`);
  }
}

function readKeyFile(file, what) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${e.message}`);
  }
}

function buildKeyring(sdk, k, forEncrypt) {
  if (k.kind === 'aes') {
    const [keyNamespace, keyName, file] = splitKeySpec(k.spec, '--aes');
    const key = readKeyFile(file, 'AES key file');
    const wrappingSuite = {
      16: sdk.RawAesWrappingSuiteIdentifier.AES128_GCM_IV12_TAG16_NO_PADDING,
      24: sdk.RawAesWrappingSuiteIdentifier.AES192_GCM_IV12_TAG16_NO_PADDING,
      32: sdk.RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    }[key.length];
    if (!wrappingSuite) throw new Error(`AES key file ${file} holds ${key.length} bytes, want 16, 24 or 32`);
    return new sdk.RawAesKeyringNode({
      keyNamespace,
      keyName,
      unencryptedMasterKey: new Uint8Array(key),
      wrappingSuite,
    });
  }
  const { keyNamespace, keyName, file, padding } = parseRsaSpec(k.spec);
  const pem = readKeyFile(file, 'RSA PEM file');
  let privateKey;
  let publicKey;
  try {
    const priv = crypto.createPrivateKey(pem);
    privateKey = priv.export({ type: 'pkcs8', format: 'pem' });
    publicKey = crypto.createPublicKey(priv).export({ type: 'spki', format: 'pem' });
  } catch (_) {
    try {
      publicKey = crypto.createPublicKey(pem).export({ type: 'spki', format: 'pem' });
    } catch (e) {
      throw new Error(`${file} holds no RSA PEM key: ${e.message}`);
    }
  }
  if (!forEncrypt && !privateKey) throw new Error(`decrypt needs an RSA private key, ${file} holds a public key`);
  const input = { keyNamespace, keyName, rsaKey: forEncrypt ? { publicKey } : { privateKey } };
  if (padding === 'pkcs1') {
    input.padding = crypto.constants.RSA_PKCS1_PADDING;
  } else {
    input.padding = crypto.constants.RSA_PKCS1_OAEP_PADDING;
    input.oaepHash = OAEP[padding];
  }
  return new sdk.RawRsaKeyringNode(input);
}

function buildKeyrings(sdk, opts, forEncrypt) {
  if (opts.keyrings.length === 0) throw new UsageError('give at least one --aes or --rsa keyring');
  const rings = opts.keyrings.map((k) => buildKeyring(sdk, k, forEncrypt));
  if (rings.length === 1) return rings[0];
  return new sdk.MultiKeyringNode({ generator: rings[0], children: rings.slice(1) });
}

function parseContext(list) {
  const ctx = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq < 0) throw new UsageError(`--context wants K=V, got ${JSON.stringify(item)}`);
    const k = item.slice(0, eq);
    if (Object.prototype.hasOwnProperty.call(ctx, k)) throw new UsageError(`--context key ${JSON.stringify(k)} given twice`);
    ctx[k] = item.slice(eq + 1);
  }
  return ctx;
}

function suiteFromHex(sdk, hex) {
  if (!/^(0x)?[0-9a-fA-F]{1,4}$/.test(hex)) throw new UsageError(`bad --suite ${JSON.stringify(hex)} (want hex such as 0478)`);
  const id = parseInt(hex.replace(/^0x/, ''), 16);
  if (typeof sdk.AlgorithmSuiteIdentifier[id] !== 'string') throw new UsageError(`unknown algorithm suite ${hex}`);
  return id;
}

function clientFor(sdk, opts) {
  const commitmentPolicy = POLICIES[opts.policy];
  if (!commitmentPolicy) throw new UsageError(`unknown --policy ${JSON.stringify(opts.policy)} (want ${Object.keys(POLICIES).join(', ')})`);
  const options = { commitmentPolicy };
  if (opts.maxEdks !== undefined) options.maxEncryptedDataKeys = parsePositiveInt(opts.maxEdks, '--max-edks');
  return sdk.buildClient(options);
}

function encryptOptions(sdk, opts) {
  const suiteHex = opts.suite !== undefined ? opts.suite : opts.policy === 'forbid-allow' ? '0378' : '0478';
  const op = { suiteId: suiteFromHex(sdk, suiteHex), encryptionContext: parseContext(opts.context) };
  if (opts.frame !== undefined) op.frameLength = parsePositiveInt(opts.frame, '--frame');
  return op;
}

const b64 = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('base64');
const hex4 = (n) => n.toString(16).padStart(4, '0');

function headerJson(sdk, h) {
  const suite = new sdk.NodeAlgorithmSuite(h.suiteId);
  const out = {
    version: h.version,
    messageFormat: sdk.MessageFormat[h.version],
    suiteId: hex4(h.suiteId),
    suiteName: sdk.AlgorithmSuiteIdentifier[h.suiteId],
    committing: suite.commitment !== 'NONE',
    signed: Boolean(suite.signatureCurve),
  };
  if (h.type !== undefined) out.type = h.type;
  out.messageId = b64(h.messageId);
  out.contentType = h.contentType;
  out.frameLength = h.frameLength;
  if (h.headerIvLength !== undefined) out.headerIvLength = h.headerIvLength;
  if (h.suiteData !== undefined) out.suiteData = b64(h.suiteData);
  out.encryptionContext = { ...h.encryptionContext };
  out.encryptedDataKeyCount = h.encryptedDataKeys.length;
  out.encryptedDataKeys = h.encryptedDataKeys.map((edk) => ({
    providerId: edk.providerId,
    providerIdBase64: Buffer.from(edk.providerId, 'utf8').toString('base64'),
    providerInfoBase64: edk.rawInfo ? b64(edk.rawInfo) : Buffer.from(edk.providerInfo, 'utf8').toString('base64'),
    encryptedDataKeyLength: edk.encryptedDataKey.byteLength,
    encryptedDataKeyBase64: b64(edk.encryptedDataKey),
  }));
  return out;
}

function collector() {
  const chunks = [];
  let length = 0;
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk);
      length += chunk.length;
      cb();
    },
  });
  sink.result = () => Buffer.concat(chunks, length);
  return sink;
}

function nullSink() {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      sink.bytes += chunk.length;
      cb();
    },
  });
  sink.bytes = 0;
  return sink;
}

function writeStdout(buf) {
  return new Promise((resolve, reject) => {
    process.stdout.write(buf, (err) => (err ? reject(err) : resolve()));
  });
}

async function doEncrypt(sdk, opts) {
  const client = clientFor(sdk, opts);
  const keyring = buildKeyrings(sdk, opts, true);
  const op = encryptOptions(sdk, opts);
  const enc = client.encryptStream(keyring, op);
  await pipeline(process.stdin, enc, process.stdout, { end: false });
}

async function doDecrypt(sdk, opts) {
  const client = clientFor(sdk, opts);
  const keyring = buildKeyrings(sdk, opts, false);
  const required = parseContext(opts.context);
  const dec = opts.unsignedOnly ? client.decryptUnsignedMessageStream(keyring) : client.decryptStream(keyring);
  let header;
  dec.once('MessageHeader', (h) => { header = h; });
  const sink = collector();
  await pipeline(process.stdin, dec, sink);
  if (!header) throw new Error('no message header was parsed');
  const ctx = header.encryptionContext;
  for (const [k, v] of Object.entries(required)) {
    if (!Object.prototype.hasOwnProperty.call(ctx, k)) throw new Error(`encryption context lacks key ${JSON.stringify(k)}`);
    if (ctx[k] !== v) throw new Error(`encryption context key ${JSON.stringify(k)} is ${JSON.stringify(ctx[k])}, expected ${JSON.stringify(v)}`);
  }
  if (opts.contextOut) fs.writeFileSync(opts.contextOut, JSON.stringify({ ...ctx }, null, 2) + '\n');
  if (opts.headerOut) fs.writeFileSync(opts.headerOut, JSON.stringify(headerJson(sdk, header), null, 2) + '\n');
  await writeStdout(sink.result());
}

async function doBench(sdk, opts) {
  if (!opts.inFile) throw new UsageError('bench needs --in FILE');
  const client = clientFor(sdk, opts);
  const op = encryptOptions(sdk, opts);
  const encKeyring = buildKeyrings(sdk, opts, true);
  const bytes = fs.statSync(opts.inFile).size;
  const readOpts = { highWaterMark: 1 << 20 };
  let seconds;
  if (!opts.benchDecrypt) {
    const t0 = process.hrtime.bigint();
    await pipeline(fs.createReadStream(opts.inFile, readOpts), client.encryptStream(encKeyring, op), nullSink());
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  } else {
    const msg = collector();
    await pipeline(fs.createReadStream(opts.inFile, readOpts), client.encryptStream(encKeyring, op), msg);
    const message = msg.result();
    const decKeyring = buildKeyrings(sdk, opts, false);
    const sink = nullSink();
    const chunks = [];
    for (let off = 0; off < message.length; off += 1 << 20) chunks.push(message.subarray(off, off + (1 << 20)));
    const t0 = process.hrtime.bigint();
    await pipeline(Readable.from(chunks), client.decryptStream(decKeyring), sink);
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (sink.bytes !== bytes) throw new Error(`decrypted ${sink.bytes} bytes, expected ${bytes}`);
  }
  const result = {
    op: opts.benchDecrypt ? 'decrypt' : 'encrypt',
    suite: hex4(op.suiteId),
    frame: op.frameLength || 4096,
    bytes,
    seconds: Number(seconds.toFixed(6)),
    mb_per_s: Number((bytes / 1e6 / seconds).toFixed(2)),
  };
  await writeStdout(JSON.stringify(result) + '\n');
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv.length === 0 || ['help', '--help', '-h'].includes(argv[0])) {
    process.stdout.write(USAGE + '\n');
    return argv.length === 0 ? 1 : 0;
  }
  const opts = parseArgs(argv);
  const cmds = { encrypt: doEncrypt, decrypt: doDecrypt, bench: doBench };
  const run = cmds[opts.command];
  if (!run) throw new UsageError(`unknown command ${JSON.stringify(opts.command)} (want encrypt, decrypt or bench)`);
  const decrypting = opts.command === 'decrypt' || (opts.command === 'bench' && opts.benchDecrypt);
  if (decrypting && usesPkcs1(opts) && !process.env[REEXEC_ENV] && !pkcs1DecryptAllowed()) {
    return reexecWithPkcs1Revert();
  }
  const sdk = loadSdk();
  await run(sdk, opts);
  return 0;
}

process.stdout.on('error', fail);

main().then(
  (code) => {
    process.exitCode = code;
  },
  fail,
);
