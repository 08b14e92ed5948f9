//! Operators' tools: the standard gRPC health service and server reflection (v1 and
//! v1alpha), so grpcurl works with no proto files.

use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1 as reflection;
use tonic_reflection::pb::v1alpha as reflection_alpha;

use crate::helpers::TestApp;

/// Each reflection version lists the application services, health, and itself.
const SERVICES: [&str; 3] = [
    "tokenauthority.v1.TokenService",
    "tokenauthority.v1.AdminService",
    "grpc.health.v1.Health",
];

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in [
        "",
        "tokenauthority.v1.TokenService",
        "tokenauthority.v1.AdminService",
    ] {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_lists_every_service_and_describes_every_method() {
    let app = TestApp::spawn().await;
    let mut client =
        reflection::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let requests = tokio_stream::iter(vec![
        reflection::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                reflection::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        },
        reflection::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                reflection::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "tokenauthority.v1.TokenService".into(),
                ),
            ),
        },
        reflection::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                reflection::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "tokenauthority.v1.AdminService".into(),
                ),
            ),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let mut listed = Vec::new();
    let mut descriptors = Vec::new();
    while let Some(response) = responses.next().await {
        match response.unwrap().message_response.unwrap() {
            reflection::server_reflection_response::MessageResponse::ListServicesResponse(list) => {
                listed.extend(list.service.into_iter().map(|s| s.name));
            }
            reflection::server_reflection_response::MessageResponse::FileDescriptorResponse(
                files,
            ) => {
                descriptors.extend(files.file_descriptor_proto);
            }
            other => panic!("unexpected reflection answer: {other:?}"),
        }
    }
    for service in SERVICES
        .iter()
        .chain(&["grpc.reflection.v1.ServerReflection"])
    {
        assert!(
            listed.iter().any(|s| s == service),
            "{service} listed: {listed:?}"
        );
    }
    let methods: Vec<String> = descriptors
        .iter()
        .map(|bytes| {
            <prost_types::FileDescriptorProto as prost::Message>::decode(bytes.as_slice()).unwrap()
        })
        .flat_map(|file| file.service)
        .flat_map(|service| {
            service
                .method
                .into_iter()
                .map(|m| m.name.unwrap_or_default())
        })
        .collect();
    for method in [
        "CreateToken",
        "GetToken",
        "ListTokens",
        "UpdateToken",
        "RevokeToken",
        "DisableToken",
        "EnableToken",
        "DeleteToken",
        "ResetToken",
        "DuplicateToken",
        "VerifyToken",
        "WatchRevocations",
        "CreateAccount",
        "GetAccount",
        "SetApiAccess",
        "CreatePrincipal",
        "GetPrincipal",
        "ListPrincipals",
        "UpdatePrincipal",
        "ListAuditEvents",
    ] {
        assert!(
            methods.iter().any(|m| m == method),
            "{method} described: {methods:?}"
        );
    }
}

#[tokio::test]
async fn reflection_v1alpha_answers_for_older_grpcurl() {
    let app = TestApp::spawn().await;
    let mut client = reflection_alpha::server_reflection_client::ServerReflectionClient::new(
        app.channel.clone(),
    );
    let requests = tokio_stream::iter(vec![
        reflection_alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                reflection_alpha::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                ),
            ),
        },
        reflection_alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                reflection_alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "grpc.health.v1.Health".into(),
                ),
            ),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let mut answers = 0;
    while let Some(response) = responses.next().await {
        match response.unwrap().message_response.unwrap() {
            reflection_alpha::server_reflection_response::MessageResponse::ListServicesResponse(list) => {
                let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                for service in SERVICES.iter().chain(&["grpc.reflection.v1alpha.ServerReflection"]) {
                    assert!(names.iter().any(|s| s == service), "{service}: {names:?}");
                }
            }
            reflection_alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files) => {
                assert!(!files.file_descriptor_proto.is_empty(), "the health service's descriptors are registered");
            }
            other => panic!("unexpected reflection answer: {other:?}"),
        }
        answers += 1;
    }
    assert_eq!(answers, 2);
}

#[tokio::test]
async fn shutdown_turns_the_server_and_every_service_not_serving() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel.clone());
    let mut streams = Vec::new();
    for service in [
        "",
        "tokenauthority.v1.TokenService",
        "tokenauthority.v1.AdminService",
    ] {
        let mut stream = health
            .watch(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!(first.status(), ServingStatus::Serving, "{service:?}");
        streams.push((service, stream));
    }
    // Shutdown begins (and waits for these streams to drain) ...
    let stopping = tokio::spawn(app.stop());
    for (service, stream) in &mut streams {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("told before the server goes away")
            .unwrap()
            .unwrap();
        // ... and every watcher hears NOT_SERVING, the whole server's ("") included: it is
        // what load balancers and Kubernetes' gRPC probes ask by default.
        assert_eq!(next.status(), ServingStatus::NotServing, "{service:?}");
    }
    drop(streams);
    stopping.await.unwrap();
}
