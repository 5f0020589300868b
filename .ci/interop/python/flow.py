#!/usr/bin/env python3
"""The ssod interop flow with grpcio and stubs generated from proto/ at run time.

Env (set by .ci/interop/run): SSOD_ADDR, SSOD_ADMIN_USER, SSOD_ADMIN_PASSWORD, and
SSOD_INTEROP_SMTP_PORT, where this flow runs the SMTP server (aiosmtpd) that ssod mails
sign-up and reset tokens to.
Prints one line per check and exits 1 at the first mismatch.
"""
import email
import email.policy
import json
import os
import pathlib
import queue
import re
import shutil
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[3]
GEN = ROOT / ".interop" / "py_gen"
FX = json.loads((ROOT / ".ci" / "interop" / "fixtures.json").read_text())


def generate_stubs():
    """Same as `python -m grpc_tools.protoc -I proto --python_out --grpc_python_out ...`."""
    import grpc_tools
    from grpc_tools import protoc

    shutil.rmtree(GEN, ignore_errors=True)
    GEN.mkdir(parents=True)
    wkt = pathlib.Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    files = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{wkt}", f"--python_out={GEN}", f"--grpc_python_out={GEN}"]
    if protoc.main(args + files) != 0:
        sys.exit("protoc failed")


generate_stubs()
sys.path.insert(0, str(GEN))

import grpc  # noqa: E402
from google.protobuf import duration_pb2, json_format, struct_pb2  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402
from sso.v1 import attribute_pb2 as apb  # noqa: E402
from sso.v1 import attribute_pb2_grpc  # noqa: E402
from sso.v1 import common_pb2 as cpb  # noqa: E402
from sso.v1 import event_pb2 as epb  # noqa: E402
from sso.v1 import event_pb2_grpc  # noqa: E402
from sso.v1 import session_pb2 as spb  # noqa: E402
from sso.v1 import session_pb2_grpc  # noqa: E402
from sso.v1 import user_pb2 as upb  # noqa: E402
from sso.v1 import user_pb2_grpc  # noqa: E402

TIMEOUT = 10
SESSION = apb.ATTRIBUTE_SCOPE_SESSION
UA = f"python-grpcio/{grpc.__version__}"


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}")


def bearer(ust):
    return (("authorization", f"Bearer {ust}"),)


def to_value(obj):
    return json_format.ParseDict(obj, struct_pb2.Value())


def from_value(value):
    return json_format.MessageToDict(value)


def duration(text):
    d = duration_pb2.Duration()
    d.FromJsonString(text)
    return d


def seconds_left(ts):
    return ts.ToSeconds() - time.time()


def call(method, request, metadata=(), what=""):
    """Calls a unary RPC; returns (response, call). Any error ends the flow."""
    try:
        return method.with_call(request, metadata=metadata, timeout=TIMEOUT)
    except grpc.RpcError as e:
        fail(f"{what or request.DESCRIPTOR.name}: {e.code().name}: {e.details()} {error_infos(e)}")


def error_infos(err):
    """The google.rpc.ErrorInfo details of a failed call (grpc-status-details-bin)."""
    status = rpc_status.from_call(err)  # raises ValueError if the Status disagrees with the call
    infos = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    return infos


def expect_error(method, request, metadata, code, reason, what):
    try:
        method.with_call(request, metadata=metadata, timeout=TIMEOUT)
    except grpc.RpcError as e:
        if e.code() != code:
            fail(f"{what}: {e.code().name} ({e.details()}), want {code.name}")
        try:
            infos = error_infos(e)
        except ValueError as bad:
            fail(f"{what}: grpc-status-details-bin does not match the call's status: {bad}")
        got = [(i.domain, i.reason) for i in infos]
        check(got == [("sso", reason)], f"{what}: {code.name}, ErrorInfo {got} (want sso/{reason})")
        return
    fail(f"{what}: succeeded, want {code.name}")


def self_service(sessions, login, username, password, me):
    """GetCurrentSession for a guest and a user; RevokeOtherSessions ends the user's others."""
    guest = call(sessions.CreateSession, spb.CreateSessionRequest(
        current_app="interop", remote_addr="127.0.0.1", user_agent=UA))[0]
    res = call(sessions.GetCurrentSession, spb.GetCurrentSessionRequest(), bearer(guest.ust))[0]
    check(res.session.session_id == guest.session.session_id and not res.HasField("user"),
          "GetCurrentSession of a guest: its session, no user")
    user_md = bearer(me.ust)
    res = call(sessions.GetCurrentSession, spb.GetCurrentSessionRequest(), user_md)[0]
    check(res.session.session_id == me.session.session_id and res.user.username == username,
          "GetCurrentSession of a user: its session and user")
    other = login(username, password)
    revoked = call(sessions.RevokeOtherSessions, spb.RevokeOtherSessionsRequest(), user_md)[0]
    check(revoked.deleted_count >= 1, f"RevokeOtherSessions ended {revoked.deleted_count}")
    expect_error(sessions.GetCurrentSession, spb.GetCurrentSessionRequest(), bearer(other.ust),
                 grpc.StatusCode.UNAUTHENTICATED, "UST_INVALID", "the other session after RevokeOtherSessions")
    call(sessions.GetCurrentSession, spb.GetCurrentSessionRequest(), user_md,
         what="the caller's own session after RevokeOtherSessions")


def totp_flow(users, username, password, user_md):
    """Enrol with pyotp as the authenticator app, confirm, log in with a code (once) and with
    a recovery code (once), then disable."""
    import pyotp

    def login_with(code):
        req = upb.LoginRequest(username=username, password=password, current_app="interop",
                               remote_addr="127.0.0.1", user_agent=UA)
        if code is not None:
            req.totp_code = code
        return req

    enrollment = call(users.BeginTotpEnrollment, upb.BeginTotpEnrollmentRequest(), user_md)[0]
    app = pyotp.parse_uri(enrollment.otpauth_uri)
    check(app.secret == enrollment.secret and app.issuer == "ssod" and app.name == username
          and app.digits == 6 and app.interval == 30, "BeginTotpEnrollment: pyotp reads the otpauth URI")
    codes = call(users.ConfirmTotpEnrollment, upb.ConfirmTotpEnrollmentRequest(totp_code=app.now()),
                 user_md)[0].recovery_codes
    check(len(set(codes)) == 10, "ConfirmTotpEnrollment: ten recovery codes")
    if os.environ.get("SSOD_INTEROP_SECRETS"):
        with open(os.environ["SSOD_INTEROP_SECRETS"], "a") as f:
            f.write("\n".join([enrollment.secret, *codes]) + "\n")
    me = call(users.GetCurrentUser, upb.GetCurrentUserRequest(), user_md)[0]
    check(me.user.totp_enabled, "GetCurrentUser: totp_enabled")

    expect_error(users.Login, login_with(None), (), grpc.StatusCode.UNAUTHENTICATED, "TOTP_REQUIRED",
                 "Login without a code")
    # The confirming code's step is used: the next step's code (one step of skew) logs in.
    code = app.at(time.time() + 30)
    res = call(users.Login, login_with(code), what="Login with a TOTP code")[0]
    check(res.ust and res.user.totp_enabled, "Login with a TOTP code")
    expect_error(users.Login, login_with(code), (), grpc.StatusCode.UNAUTHENTICATED, "TOTP_INVALID",
                 "Login with the same code again")
    call(users.Login, login_with(codes[0]), what="Login with a recovery code")
    print("ok: Login with a recovery code")
    expect_error(users.Login, login_with(codes[0]), (), grpc.StatusCode.UNAUTHENTICATED, "TOTP_INVALID",
                 "Login with a used recovery code")

    call(users.DisableTotp, upb.DisableTotpRequest(password=password, totp_code=codes[1]), user_md)
    res = call(users.Login, login_with(None), what="Login after DisableTotp")[0]
    check(not res.user.totp_enabled, "DisableTotp with password and a recovery code")
class MailSink:
    """An SMTP server on SSOD_INTEROP_SMTP_PORT; received mails wait in a queue."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.mails = queue.Queue()
        self.controller = Controller(self, hostname="127.0.0.1",
                                     port=int(os.environ["SSOD_INTEROP_SMTP_PORT"]))
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        self.mails.put((envelope.rcpt_tos, envelope.content))
        return "250 OK"

    def token_for(self, address, what):
        """The account token of the next mail, which must go to `address`."""
        try:
            rcpt, content = self.mails.get(timeout=30)
        except queue.Empty:
            fail(f"{what}: no mail within 30 s")
        check(rcpt == [address], f"{what}: mail to {rcpt}")
        body = email.message_from_bytes(content, policy=email.policy.default).get_body(("plain",))
        found = re.search(r"ssod_act_[A-Za-z0-9_-]{43}", body.get_content())
        check(found is not None, f"{what}: the mail carries a token")
        return found.group(0)

    def stop(self):
        self.controller.stop()


def remember_secrets(*secrets):
    """Run checks that the server log holds none of these."""
    if os.environ.get("SSOD_INTEROP_SECRETS"):
        with open(os.environ["SSOD_INTEROP_SECRETS"], "a") as f:
            f.writelines(f"{secret}\n" for secret in secrets)


def sign_up_and_reset(users, login, mails):
    """Sign-up, confirmation by the mailed token, login; reset by mail, login again."""
    username = f"python-signup-{int(time.time())}-{os.getpid()}"
    address = f"{username}@example.invalid"
    password = f"Interop-signup-{uuid.uuid4().hex[:8]}-Pa55!"
    new_password = f"Interop-reset-{uuid.uuid4().hex[:8]}-Pa55!"
    remember_secrets(password, new_password)
    signed_up = call(users.SignUp, upb.SignUpRequest(
        username=username, password=password, email=address, current_app="interop",
        remote_addr="127.0.0.1", user_agent=UA))[0]
    check(signed_up.user.username == username and not signed_up.user.is_confirmed
          and signed_up.confirmation_token == "", f"SignUp {username}: unconfirmed, token mailed")
    expect_error(users.Login, upb.LoginRequest(username=username, password=password, current_app="interop",
                                               remote_addr="127.0.0.1", user_agent=UA),
                 (), grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS", "Login before confirmation")
    token = mails.token_for(address, "sign-up mail")
    remember_secrets(token)
    confirmed = call(users.ConfirmSignUp, upb.ConfirmSignUpRequest(confirmation_token=token))[0]
    check(confirmed.user.user_id == signed_up.user.user_id and confirmed.user.is_confirmed, "ConfirmSignUp")
    expect_error(users.ConfirmSignUp, upb.ConfirmSignUpRequest(confirmation_token=token), (),
                 grpc.StatusCode.INVALID_ARGUMENT, "TOKEN_INVALID", "ConfirmSignUp twice")
    first = login(username, password)
    check(first.user.is_confirmed, "Login after confirmation")
    remember_secrets(first.ust)

    reset_request = upb.RequestPasswordResetRequest(username=username, current_app="interop",
                                                    remote_addr="127.0.0.1", user_agent=UA)
    check(call(users.RequestPasswordReset, reset_request)[0].reset_token == "", "RequestPasswordReset")
    unknown = upb.RequestPasswordResetRequest(username=f"{username}-unknown", current_app="interop")
    check(call(users.RequestPasswordReset, unknown)[0].reset_token == "",
          "RequestPasswordReset of an unknown name answers the same")
    token = mails.token_for(address, "reset mail")
    remember_secrets(token)
    call(users.ResetPassword, upb.ResetPasswordRequest(reset_token=token, new_password=new_password))
    print("ok: ResetPassword")
    expect_error(users.GetCurrentUser, upb.GetCurrentUserRequest(), bearer(first.ust),
                 grpc.StatusCode.UNAUTHENTICATED, "UST_INVALID", "the reset ended the earlier session")
    again = login(username, new_password)
    check(again.user.user_id == signed_up.user.user_id, "Login with the new password")
    remember_secrets(again.ust)


def main():
    mails = MailSink()
    channel = grpc.insecure_channel(os.environ["SSOD_ADDR"])
    users = user_pb2_grpc.UserServiceStub(channel)
    sessions = session_pb2_grpc.SessionServiceStub(channel)
    attrs = attribute_pb2_grpc.AttributeServiceStub(channel)

    def login(username, password):
        req = upb.LoginRequest(username=username, password=password, current_app="interop",
                               remote_addr="127.0.0.1", user_agent=UA)
        return call(users.Login, req, what=f"Login {username}")[0]

    admin = login(os.environ["SSOD_ADMIN_USER"], os.environ["SSOD_ADMIN_PASSWORD"])
    check(admin.ust and admin.user.is_super_user and admin.session.session_id, "admin Login")
    admin_md = bearer(admin.ust)

    username = f"python-{int(time.time())}-{os.getpid()}"
    password = f"Interop-python-{uuid.uuid4().hex[:8]}-Pa55!"
    created = call(users.CreateUser, upb.CreateUserRequest(
        username=username, password=password, email=f"{username}@example.invalid",
        display_name="Python User"), admin_md)[0]
    check(created.user.username == username and not created.user.is_super_user
          and created.user.approval_status == cpb.APPROVAL_STATUS_APPROVED
          and created.generated_password == "", f"CreateUser {username}")
    user_id = created.user.user_id

    me = login(username, password)
    check(me.user.user_id == user_id and me.session.user_id == user_id
          and me.session.current_app == "interop" and me.session.user_agent == UA, "user Login")
    user_md = bearer(me.ust)
    if os.environ.get("SSOD_INTEROP_SECRETS"):  # run checks the server log holds none of these
        with open(os.environ["SSOD_INTEROP_SECRETS"], "a") as f:
            f.write(f"{password}\n{me.ust}\n{admin.ust}\n")

    one = FX["set_attribute"]
    res = call(attrs.SetAttribute, apb.SetAttributeRequest(
        scope=SESSION, name=one["name"], value=to_value(one["value"]),
        expiration=duration(one["expiration"]), encrypt=one["encrypt"]), user_md)[0]
    check(res.attribute.name == one["name"] and from_value(res.attribute.value) == one["value"]
          and res.attribute.encrypted and 50 < seconds_left(res.attribute.expiration_time) <= 62,
          "SetAttribute prefs (encrypted, 60s)")

    writes = []
    for item in FX["set_attributes"]:
        w = apb.AttributeWrite(name=item["name"], value=to_value(item["value"]))
        if "expiration" in item:
            w.expiration.CopyFrom(duration(item["expiration"]))
        if "encrypt" in item:
            w.encrypt = item["encrypt"]
        writes.append(w)
    res = call(attrs.SetAttributes, apb.SetAttributesRequest(scope=SESSION, attributes=writes), user_md)[0]
    check(sorted(a.name for a in res.attributes) == sorted(i["name"] for i in FX["set_attributes"]),
          "SetAttributes (item expiration and encrypt overrides)")

    got = call(attrs.GetAttributes, apb.GetAttributesRequest(scope=SESSION), user_md)[0].attributes
    expected_names = sorted([one["name"]] + [i["name"] for i in FX["set_attributes"]])
    check(sorted(got) == expected_names, f"GetAttributes names {sorted(got)}")
    for item in FX["set_attributes"]:
        a = got[item["name"]]
        check(from_value(a.value) == item["value"], f"GetAttributes {item['name']} value round-trip")
        check(a.encrypted == item.get("encrypt", False), f"GetAttributes {item['name']} encrypted={a.encrypted}")
        if "expiration" in item:
            left = seconds_left(a.expiration_time)
            check(290 < left <= 302, f"GetAttributes {item['name']} expires in {left:.0f}s")
        else:
            check(not a.HasField("expiration_time"), f"GetAttributes {item['name']} never expires")

    a = call(attrs.GetAttribute, apb.GetAttributeRequest(scope=SESSION, name=one["name"]), user_md)[0].attribute
    check(from_value(a.value) == one["value"] and a.encrypted, "GetAttribute prefs round-trip, encrypted")

    target = spb.GetSessionRequest(target_ust=me.ust, current_app="interop", remote_addr="127.0.0.1")
    res = call(sessions.GetSession, target, admin_md)[0]
    s = res.session
    check(s.session_id == me.session.session_id and s.user_id == user_id, "GetSession as admin")
    check(me.ust.encode() not in res.SerializeToString(), "GetSession response does not carry the UST")
    expect_error(sessions.GetSession, target, user_md, grpc.StatusCode.PERMISSION_DENIED,
                 "SUPER_USER_REQUIRED", "GetSession as a normal user")
    expect_error(users.Login, upb.LoginRequest(username=username, password="wrong-" + password,
                                               current_app="interop", remote_addr="127.0.0.1", user_agent=UA),
                 (), grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS", "Login with a wrong password")

    rid = str(uuid.uuid4())
    res, c = call(users.GetCurrentUser, upb.GetCurrentUserRequest(), user_md + (("x-request-id", rid),))
    headers = dict(c.initial_metadata())
    check(res.user.username == username, "GetCurrentUser")
    check(headers.get("x-request-id") == rid, f"x-request-id echoed in response headers ({headers.get('x-request-id')})")

    self_service(sessions, login, username, password, me)
    totp_flow(users, username, password, user_md)

    call(users.Logout, upb.LogoutRequest(), user_md)
    print("ok: Logout")
    expect_error(users.GetCurrentUser, upb.GetCurrentUserRequest(), user_md, grpc.StatusCode.UNAUTHENTICATED,
                 "UST_INVALID", "GetCurrentUser after Logout")
    check_events(event_pb2_grpc.EventServiceStub(channel), admin_md, user_id)

    sign_up_and_reset(users, login, mails)
    mails.stop()
    channel.close()
    print("python flow: all checks passed")


def check_events(events, admin_md, user_id):
    """The audit trail of this flow's user: listed, watched from a cursor, resumed."""
    wanted = {"user.created", "login.succeeded", "session.read", "login.failed", "logout"}
    deadline = time.time() + TIMEOUT
    while True:  # a failed login is recorded a moment after its call returns
        mine = list(call(events.ListEvents, epb.ListEventsRequest(user_id=user_id, page_size=100),
                         admin_md)[0].events)
        if wanted <= {e.type for e in mine} or time.time() > deadline:
            break
        time.sleep(0.1)
    check(wanted <= {e.type for e in mine}, f"ListEvents of the user: {[e.type for e in mine]}")
    check([e.event_id for e in mine] == sorted(e.event_id for e in mine), "ListEvents oldest first")
    failed = next(e for e in mine if e.type == "login.failed")
    check(failed.reason == "INVALID_CREDENTIALS", "login.failed carries its reason")

    def watch(after, count):
        """The next `count` events of this user after the cursor `after`, heartbeats skipped."""
        stream = events.WatchEvents(epb.WatchEventsRequest(after_event_id=after),
                                    metadata=admin_md, timeout=TIMEOUT * 3)
        seen = []
        try:
            for message in stream:
                if message.HasField("event") and message.event.user_id == user_id:
                    seen.append(message.event)
                    if len(seen) == count:
                        break
        finally:
            stream.cancel()
        return seen

    seen = watch(mine[0].event_id, len(mine) - 1)
    check([e.event_id for e in seen] == [e.event_id for e in mine[1:]],
          f"WatchEvents replays the user's {len(seen)} events after the first, in order")
    resumed = watch(seen[0].event_id, len(mine) - 2)
    check([e.event_id for e in resumed] == [e.event_id for e in mine[2:]],
          "WatchEvents resumed from a cursor: no event lost or repeated")
    expect_error(events.ListEvents, epb.ListEventsRequest(types=["no.such.type"]), admin_md,
                 grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "ListEvents with an unknown type")


if __name__ == "__main__":
    main()
