//! The super-user gate: every SU-only method × every kind of token; and that health,
//! reflection and the correlation id work without one.

use std::{collections::BTreeSet, time::Duration};

use http::uri::PathAndQuery;
use ssod::{grpc::SUPER_USER_METHODS, proto};
use tonic::{Code, Request, Status};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    both,
    harness::{Backend, TestServer, assert_error, authed},
};

/// The contract's SU-only RPCs, written out independently of the server's table.
const CONTRACT_SU_METHODS: &[&str] = &[
    "/sso.v1.UserService/CreateUser",
    "/sso.v1.UserService/GetUser",
    "/sso.v1.UserService/ListUsers",
    "/sso.v1.UserService/DeleteUser",
    "/sso.v1.UserService/LockUser",
    "/sso.v1.UserService/UnlockUser",
    "/sso.v1.UserService/ApproveUser",
    "/sso.v1.UserService/RejectUser",
    "/sso.v1.SessionService/GetSession",
    "/sso.v1.SessionService/VerifySession",
    "/sso.v1.SessionService/DeleteUserSessions",
    "/sso.v1.SessionService/PurgeExpired",
    "/sso.v1.EventService/ListEvents",
    "/sso.v1.EventService/WatchEvents",
];

/// The SU-only methods that answer with a stream.
const STREAMING_METHODS: &[&str] = &["/sso.v1.EventService/WatchEvents"];

#[test]
fn the_gate_table_is_the_contracts_list() {
    let table: BTreeSet<_> = SUPER_USER_METHODS.iter().collect();
    let contract: BTreeSet<_> = CONTRACT_SU_METHODS.iter().collect();
    assert_eq!(table, contract);
}

/// The parts of a `FileDescriptorProto` that say which methods are marked
/// `(sso.v1.super_user_only)`: decoding only these keeps the extension prost would drop.
mod marks {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct File {
        #[prost(message, repeated, tag = "6")]
        pub service: Vec<Service>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Service {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, repeated, tag = "2")]
        pub method: Vec<Method>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Method {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "4")]
        pub options: Option<Options>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Options {
        #[prost(bool, optional, tag = "50001")]
        pub super_user_only: Option<bool>,
    }
}

/// Reflection serves the protos with their marks (what `grpcurl describe` shows), and
/// they mark exactly the contract's list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_shows_the_super_user_marks() {
    use prost::Message;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(Backend::Memory).await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let files = [
        "sso/v1/options.proto",
        "sso/v1/user.proto",
        "sso/v1/session.proto",
        "sso/v1/event.proto",
    ];
    let requests = files.map(|file| ServerReflectionRequest {
        message_request: Some(MessageRequest::FileByFilename(file.into())),
        ..Default::default()
    });
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();
    let mut marked = BTreeSet::new();
    for file in files {
        let answer = stream.message().await.expect("answer").expect("a message");
        let Some(MessageResponse::FileDescriptorResponse(found)) = answer.message_response else {
            panic!("no descriptor of {file}: {answer:?}");
        };
        for raw in found.file_descriptor_proto {
            for service in marks::File::decode(raw.as_slice()).expect("file").service {
                for method in service.method {
                    if method.options.and_then(|o| o.super_user_only) == Some(true) {
                        marked.insert(format!("/sso.v1.{}/{}", service.name, method.name));
                    }
                }
            }
        }
    }
    let contract: BTreeSet<_> = CONTRACT_SU_METHODS.iter().map(|m| m.to_string()).collect();
    assert_eq!(marked, contract);
}

/// Calls `method` with an empty request message: every SU method accepts one on the wire. A
/// streaming method counts as answered once its stream opens.
async fn call_raw(
    server: &TestServer,
    method: &'static str,
    ust: Option<&str>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let request = match ust {
        Some(ust) => authed(ust, ()),
        None => Request::new(()),
    };
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    if STREAMING_METHODS.contains(&method) {
        return grpc
            .server_streaming(request, PathAndQuery::from_static(method), codec)
            .await
            .map(drop);
    }
    grpc.unary(request, PathAndQuery::from_static(method), codec)
        .await
        .map(drop)
}

#[derive(Debug)]
enum Token {
    Missing,
    Malformed(String),
    Unknown(String),
    Expired(String),
    Guest(String),
    NonSuperUser(String),
    SuperUser(String),
}

async fn gate_matrix(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.sessions.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let expired = server.admin().await;
    server.advance(Duration::from_secs(61));
    let admin = server.admin().await;
    let (_, user) = server.user_session("plain-user").await;
    let guest = server.guest().await.ust;
    let tokens = [
        Token::Missing,
        Token::Malformed("not-a-token".into()),
        Token::Unknown(ssod::crypto::generate_ust()),
        Token::Expired(expired),
        Token::Guest(guest),
        Token::NonSuperUser(user),
        Token::SuperUser(admin),
    ];
    for method in SUPER_USER_METHODS {
        for token in &tokens {
            let ust = match token {
                Token::Missing => None,
                Token::Malformed(t)
                | Token::Unknown(t)
                | Token::Expired(t)
                | Token::Guest(t)
                | Token::NonSuperUser(t)
                | Token::SuperUser(t) => Some(t.as_str()),
            };
            let result = call_raw(&server, method, ust).await;
            let context = format!("{method} with {token:?}");
            match token {
                Token::Missing => {
                    assert_error(
                        &result.expect_err(&context),
                        Code::Unauthenticated,
                        "UST_MISSING",
                    );
                }
                Token::Malformed(_) | Token::Unknown(_) | Token::Expired(_) => {
                    assert_error(
                        &result.expect_err(&context),
                        Code::Unauthenticated,
                        "UST_INVALID",
                    );
                }
                Token::Guest(_) | Token::NonSuperUser(_) => assert_error(
                    &result.expect_err(&context),
                    Code::PermissionDenied,
                    "SUPER_USER_REQUIRED",
                ),
                Token::SuperUser(_) => {
                    if let Err(status) = result {
                        // Past the gate, an empty request is at worst an argument error.
                        assert!(
                            matches!(status.code(), Code::InvalidArgument | Code::NotFound),
                            "{context}: {status:?}"
                        );
                    }
                }
            }
        }
    }
}

/// The gate refuses before the handler runs: nothing is created.
async fn refused_calls_have_no_effect(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, user) = server.user_session("mallory").await;
    let status = server
        .users()
        .create_user(authed(
            &user,
            proto::CreateUserRequest {
                username: "sneaky".into(),
                password: Some("sneaky-password".into()),
                is_super_user: true,
                ..Default::default()
            },
        ))
        .await
        .expect_err("refused");
    assert_error(&status, Code::PermissionDenied, "SUPER_USER_REQUIRED");
    let admin = server.admin().await;
    let lookup = server
        .users()
        .get_user(authed(
            &admin,
            proto::GetUserRequest {
                username: "sneaky".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("not created");
    assert_error(&lookup, Code::NotFound, "USER_NOT_FOUND");
}

/// Tokens in other places or schemes do not authenticate.
async fn only_bearer_authorization_counts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    for header in [
        format!("Basic {admin}"),
        admin.clone(),
        format!("Bearer {admin}x"),
    ] {
        let mut request = Request::new(proto::PurgeExpiredRequest {});
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("header"));
        let status = server
            .sessions()
            .purge_expired(request)
            .await
            .expect_err(&header);
        assert_error(&status, Code::Unauthenticated, "UST_INVALID");
    }
    let mut request = Request::new(proto::PurgeExpiredRequest {});
    request
        .metadata_mut()
        .insert("x-ust", admin.parse().expect("header"));
    let status = server
        .sessions()
        .purge_expired(request)
        .await
        .expect_err("no header");
    assert_error(&status, Code::Unauthenticated, "UST_MISSING");
}

async fn health_and_reflection_need_no_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in [
        "",
        "sso.v1.UserService",
        "sso.v1.SessionService",
        "sso.v1.AttributeService",
    ] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner();
        assert_eq!(response.status, 1, "{service:?} is SERVING");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "sso.v1.Nope".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);

    // Reflection v1 and v1alpha both list the services, without a token.
    use tonic_reflection::pb::{v1, v1alpha};
    let request = v1::ServerReflectionRequest {
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
        ..Default::default()
    };
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel.clone());
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = stream
        .message()
        .await
        .expect("v1 answer")
        .expect("a message")
        .message_response
    else {
        panic!("v1 did not list services");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "sso.v1.UserService",
        "sso.v1.SessionService",
        "sso.v1.AttributeService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|name| name == service),
            "v1 lists {service}: {names:?}"
        );
    }
    let request = v1alpha::ServerReflectionRequest {
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
        ..Default::default()
    };
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel.clone());
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream
            .message()
            .await
            .expect("v1alpha answer")
            .expect("a message")
            .message_response
    else {
        panic!("v1alpha did not list services");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "sso.v1.SessionService")
    );
}

async fn request_ids_are_echoed_or_generated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut request = Request::new(proto::CreateSessionRequest::default());
    request.metadata_mut().insert(
        "x-request-id",
        "cid-from-client-42".parse().expect("header"),
    );
    let response = server
        .sessions()
        .create_session(request)
        .await
        .expect("guest");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("cid-from-client-42")
    );
    let response = server
        .sessions()
        .create_session(proto::CreateSessionRequest::default())
        .await
        .expect("guest");
    let generated = response
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("generated cid");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    // Errors carry it too.
    let status = server
        .users()
        .get_current_user(proto::GetCurrentUserRequest {})
        .await
        .expect_err("no token");
    assert!(status.metadata().get("x-request-id").is_some());
}

both!(
    gate_matrix,
    refused_calls_have_no_effect,
    only_bearer_authorization_counts,
    health_and_reflection_need_no_token,
    request_ids_are_echoed_or_generated,
);
