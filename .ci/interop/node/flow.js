#!/usr/bin/env node
// The ssod interop flow with @grpc/grpc-js, loading proto/ with @grpc/proto-loader.
// Env (set by .ci/interop/run): SSOD_ADDR, SSOD_ADMIN_USER, SSOD_ADMIN_PASSWORD; NODE_PATH
// points at .interop/node/node_modules. Exits 1 at the first mismatch.
'use strict';
const path = require('path');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const FX = require(path.join(ROOT, '.ci', 'interop', 'fixtures.json'));
const UA = `node-grpc-js/${require('@grpc/grpc-js/package.json').version}`;
const TIMEOUT_MS = 10000;

// proto-loader resolves google/protobuf/*.proto from its bundled well-known types.
const def = protoLoader.loadSync(['sso/v1/user.proto', 'sso/v1/session.proto', 'sso/v1/attribute.proto', 'sso/v1/event.proto'], {
  includeDirs: [path.join(ROOT, 'proto')],
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const sso = grpc.loadPackageDefinition(def).sso.v1;

// google.rpc.Status and ErrorInfo (not in proto/) from the google-proto-files package.
const gpf = path.dirname(require.resolve('google-proto-files/package.json'));
const rpcRoot = protobuf.loadSync([path.join(gpf, 'google/rpc/status.proto'), path.join(gpf, 'google/rpc/error_details.proto')]);
const Status = rpcRoot.lookupType('google.rpc.Status');
const ErrorInfo = rpcRoot.lookupType('google.rpc.ErrorInfo');

function fail(msg) { console.log(`FAIL: ${msg}`); process.exit(1); }
function check(cond, msg) { if (!cond) fail(msg); console.log(`ok: ${msg}`); }

// JSON <-> google.protobuf.Value as proto-loader represents it. The well-known types come
// from protobufjs's bundled definitions, whose field names are camelCase even with keepCase.
function toValue(v) {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: { fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toValue(x)])) } };
}
function fromValue(v) {
  switch (v.kind) {
    case 'nullValue': return null;
    case 'numberValue': case 'stringValue': case 'boolValue': return v[v.kind];
    case 'listValue': return (v.listValue.values || []).map(fromValue);
    case 'structValue': return Object.fromEntries(Object.entries(v.structValue.fields || {}).map(([k, x]) => [k, fromValue(x)]));
    default: throw new Error(`Value with no kind: ${JSON.stringify(v)}`);
  }
}
// Deep equality of JSON values (key order ignored).
function same(a, b) {
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
}
function duration(text) { return { seconds: Number(text.replace(/s$/, '')), nanos: 0 }; }
function secondsLeft(ts) { return Number(ts.seconds) + ts.nanos / 1e9 - Date.now() / 1000; }

// Unary call as a promise of { res, headers }; rejects with the grpc-js error.
function call(client, method, req, md = {}) {
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata();
    const c = client[method](req, meta, { deadline: Date.now() + TIMEOUT_MS }, (err, res) =>
      (err ? reject(err) : resolve({ res, headers })));
    c.on('metadata', (m) => { headers = m; });
  });
}
function errorInfos(err) {
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return [];
  const status = Status.decode(raw);
  if (status.code !== err.code) fail(`grpc-status-details-bin code ${status.code} != call code ${err.code}`);
  return status.details
    .filter((d) => d.type_url === 'type.googleapis.com/google.rpc.ErrorInfo')
    .map((d) => ErrorInfo.decode(d.value));
}
async function ok(client, method, req, md) {
  try { return await call(client, method, req, md); } catch (err) {
    return fail(`${method}: ${grpc.status[err.code]}: ${err.details} ${JSON.stringify(errorInfos(err))}`);
  }
}
async function expectError(client, method, req, md, code, reason, what) {
  try { await call(client, method, req, md); } catch (err) {
    if (err.code !== code) fail(`${what}: ${grpc.status[err.code]} (${err.details}), want ${grpc.status[code]}`);
    const got = errorInfos(err).map((i) => `${i.domain}/${i.reason}`);
    return check(got.length === 1 && got[0] === `sso/${reason}`,
      `${what}: ${grpc.status[code]}, ErrorInfo ${JSON.stringify(got)} (want sso/${reason})`);
  }
  return fail(`${what}: succeeded, want ${grpc.status[code]}`);
}

// The next `count` events of `userId` after the cursor `after`, heartbeats skipped.
function watch(events, md, after, userId, count) {
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  return new Promise((resolve, reject) => {
    const seen = [];
    const stream = events.WatchEvents({ after_event_id: after }, meta, { deadline: Date.now() + 3 * TIMEOUT_MS });
    stream.on('data', (message) => {
      if (message.event && message.event.user_id === userId) {
        seen.push(message.event);
        if (seen.length === count) { stream.cancel(); resolve(seen); }
      }
    });
    stream.on('error', (err) => { if (err.code !== grpc.status.CANCELLED) reject(err); });
    stream.on('end', () => resolve(seen));
  });
}

// The audit trail of this flow's user: listed, watched from a cursor, resumed.
async function checkEvents(events, adminMd, userId) {
  const wanted = ['user.created', 'login.succeeded', 'session.read', 'login.failed', 'logout'];
  const deadline = Date.now() + TIMEOUT_MS;
  let mine = [];
  for (;;) { // a failed login is recorded a moment after its call returns
    mine = (await ok(events, 'ListEvents', { user_id: userId, page_size: 100 }, adminMd)).res.events;
    const types = new Set(mine.map((e) => e.type));
    if (wanted.every((t) => types.has(t)) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const types = new Set(mine.map((e) => e.type));
  check(wanted.every((t) => types.has(t)), `ListEvents of the user: ${mine.map((e) => e.type)}`);
  const ids = mine.map((e) => e.event_id);
  check(same(ids, [...ids].sort()), 'ListEvents oldest first');
  check(mine.find((e) => e.type === 'login.failed').reason === 'INVALID_CREDENTIALS', 'login.failed carries its reason');
  const seen = await watch(events, adminMd, ids[0], userId, ids.length - 1);
  check(same(seen.map((e) => e.event_id), ids.slice(1)), `WatchEvents replays the user's ${seen.length} events after the first, in order`);
  const resumed = await watch(events, adminMd, seen[0].event_id, userId, ids.length - 2);
  check(same(resumed.map((e) => e.event_id), ids.slice(2)), 'WatchEvents resumed from a cursor: no event lost or repeated');
  await expectError(events, 'ListEvents', { types: ['no.such.type'] }, adminMd, grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT', 'ListEvents with an unknown type');
}

async function main() {
  const creds = grpc.credentials.createInsecure();
  const users = new sso.UserService(process.env.SSOD_ADDR, creds);
  const sessions = new sso.SessionService(process.env.SSOD_ADDR, creds);
  const attrs = new sso.AttributeService(process.env.SSOD_ADDR, creds);
  const SESSION = 'ATTRIBUTE_SCOPE_SESSION';
  const loginReq = (username, password) => ({ username, password, current_app: 'interop', remote_addr: '127.0.0.1', user_agent: UA });
  const bearer = (ust) => ({ authorization: `Bearer ${ust}` });

  const admin = (await ok(users, 'Login', loginReq(process.env.SSOD_ADMIN_USER, process.env.SSOD_ADMIN_PASSWORD))).res;
  check(admin.ust && admin.user.is_super_user === true && admin.session.session_id, 'admin Login');
  const adminMd = bearer(admin.ust);

  const username = `node-${Math.floor(Date.now() / 1000)}-${process.pid}`;
  const password = `Interop-node-${crypto.randomBytes(4).toString('hex')}-Pa55!`;
  const created = (await ok(users, 'CreateUser', { username, password, email: `${username}@example.invalid`, display_name: 'Node User' }, adminMd)).res;
  check(created.user.username === username && created.user.is_super_user === false &&
    created.user.approval_status === 'APPROVAL_STATUS_APPROVED' && created.generated_password === '', `CreateUser ${username}`);
  const userId = created.user.user_id;

  const me = (await ok(users, 'Login', loginReq(username, password))).res;
  check(me.user.user_id === userId && me.session.user_id === userId && me.session.user_agent === UA, 'user Login');
  const userMd = bearer(me.ust);
  if (process.env.SSOD_INTEROP_SECRETS) { // run checks the server log holds none of these
    require('fs').appendFileSync(process.env.SSOD_INTEROP_SECRETS, `${password}\n${me.ust}\n${admin.ust}\n`);
  }

  const one = FX.set_attribute;
  let a = (await ok(attrs, 'SetAttribute', { scope: SESSION, name: one.name, value: toValue(one.value), expiration: duration(one.expiration), encrypt: one.encrypt }, userMd)).res.attribute;
  const left1 = secondsLeft(a.expiration_time);
  check(a.name === one.name && same(fromValue(a.value), one.value) && a.encrypted === true && left1 > 50 && left1 <= 62,
    'SetAttribute prefs (encrypted, 60s)');

  const writes = FX.set_attributes.map((i) => {
    const w = { name: i.name, value: toValue(i.value) };
    if ('expiration' in i) w.expiration = duration(i.expiration);
    if ('encrypt' in i) w.encrypt = i.encrypt;
    return w;
  });
  const set = (await ok(attrs, 'SetAttributes', { scope: SESSION, attributes: writes }, userMd)).res;
  check(same(set.attributes.map((x) => x.name).sort(), FX.set_attributes.map((i) => i.name).sort()),
    'SetAttributes (item expiration and encrypt overrides)');

  const got = (await ok(attrs, 'GetAttributes', { scope: SESSION }, userMd)).res.attributes;
  check(same(Object.keys(got).sort(), [one.name, ...FX.set_attributes.map((i) => i.name)].sort()), `GetAttributes names ${Object.keys(got).sort()}`);
  for (const i of FX.set_attributes) {
    const g = got[i.name];
    check(same(fromValue(g.value), i.value), `GetAttributes ${i.name} value round-trip`);
    check(g.encrypted === (i.encrypt || false), `GetAttributes ${i.name} encrypted=${g.encrypted}`);
    if ('expiration' in i) {
      const left = secondsLeft(g.expiration_time);
      check(left > 290 && left <= 302, `GetAttributes ${i.name} expires in ${left.toFixed(0)}s`);
    } else {
      check(g.expiration_time === null, `GetAttributes ${i.name} never expires`);
    }
  }
  a = (await ok(attrs, 'GetAttribute', { scope: SESSION, name: one.name }, userMd)).res.attribute;
  check(same(fromValue(a.value), one.value) && a.encrypted === true, 'GetAttribute prefs round-trip, encrypted');

  const target = { target_ust: me.ust, current_app: 'interop', remote_addr: '127.0.0.1' };
  const s = (await ok(sessions, 'GetSession', target, adminMd)).res.session;
  check(s.session_id === me.session.session_id && s.user_id === userId, 'GetSession as admin');
  await expectError(sessions, 'GetSession', target, userMd, grpc.status.PERMISSION_DENIED, 'SUPER_USER_REQUIRED', 'GetSession as a normal user');
  await expectError(users, 'Login', loginReq(username, `wrong-${password}`), {}, grpc.status.UNAUTHENTICATED, 'INVALID_CREDENTIALS', 'Login with a wrong password');

  const rid = crypto.randomUUID();
  const cur = await ok(users, 'GetCurrentUser', {}, { ...userMd, 'x-request-id': rid });
  check(cur.res.user.username === username, 'GetCurrentUser');
  const echoed = cur.headers.get('x-request-id')[0];
  check(echoed === rid, `x-request-id echoed in response headers (${echoed})`);

  await ok(users, 'Logout', {}, userMd);
  console.log('ok: Logout');
  await expectError(users, 'GetCurrentUser', {}, userMd, grpc.status.UNAUTHENTICATED, 'UST_INVALID', 'GetCurrentUser after Logout');
  const events = new sso.EventService(process.env.SSOD_ADDR, creds);
  await checkEvents(events, adminMd, userId);
  [users, sessions, attrs, events].forEach((c) => c.close());
  console.log('node flow: all checks passed');
}

main().catch((e) => fail(`unexpected: ${e.stack || e}`));
