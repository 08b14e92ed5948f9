//! An example backend service protected by the token authority.
//!
//! It serves `orders.v1.OrdersService` behind [`VerifyLayer`]: every call must carry a token
//! with `orders.read`, verified by a [`CachingVerifier`] that answers from memory and hears
//! revocations within milliseconds. The handler reads the verified identity from the request
//! extensions. Health checks pass without a token.
//!
//! ```sh
//! TOKEN_AUTHORITY_ENDPOINT=http://127.0.0.1:50051 \
//! VERIFIER_TOKEN=tka_…   # a token with tokens.verify (an operator service account's)
//! cargo run --example backend
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use token_authority::client::{CachingVerifier, Identity, VerifierConfig, VerifyLayer};

mod pb {
    tonic::include_proto!("orders.v1");
}

use pb::orders_service_server::{OrdersService, OrdersServiceServer};

struct Orders;

#[tonic::async_trait]
impl OrdersService for Orders {
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        // Put there by VerifyLayer; absent only if the layer is missing.
        let identity = request
            .extensions()
            .get::<Arc<Identity>>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no verified identity"))?;
        Ok(Response::new(pb::ListOrdersResponse {
            account_id: identity.account_id.clone(),
            caller: identity.owner_name.clone(),
            scopes: identity.scopes.clone(),
            orders: vec![format!("{}-order-1", identity.account_id)],
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let endpoint = std::env::var("TOKEN_AUTHORITY_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let credential = std::env::var("VERIFIER_TOKEN").map_err(|_| {
        anyhow::anyhow!("set VERIFIER_TOKEN to a token with the tokens.verify permission")
    })?;
    let addr: SocketAddr = std::env::var("BACKEND_LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:50061".into())
        .parse()?;

    let verifier = CachingVerifier::new(VerifierConfig::new(endpoint, credential))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<OrdersServiceServer<Orders>>().await;

    // Bound first, so that `BACKEND_LISTEN_ADDR=127.0.0.1:0` picks a free port and the
    // line below tells which (the crate's tests run this example that way).
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "orders backend listening");
    println!("listening on {addr}");
    tonic::transport::Server::builder()
        .layer(
            VerifyLayer::new(verifier, &["orders.read"])
                .allow_unauthenticated("/grpc.health.v1.Health/"),
        )
        .add_service(health_service)
        .add_service(OrdersServiceServer::new(Orders))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}
