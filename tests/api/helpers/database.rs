//! Direct SQL on a test database, for what no RPC can set up or show: data of an older
//! version, events with skewed clocks, which revisions are retained. One connection path
//! for both databases (sqlx's `Any` driver picks SQLite or PostgreSQL from the URL).

use sqlx::{AnyConnection, Connection};

async fn connect(database_url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(database_url)
        .await
        .expect("the test database accepts a connection")
}

/// Runs `statements` directly on a test database, for tests that set up what no RPC can.
pub async fn execute_sql(database_url: &str, statements: &[String]) {
    let mut db = connect(database_url).await;
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut db)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
}

/// The revisions of the invalidation events a test database retains, in order.
pub async fn retained_revisions(database_url: &str) -> Vec<i64> {
    let mut db = connect(database_url).await;
    sqlx::query_scalar("SELECT revision FROM invalidation_events ORDER BY revision")
        .fetch_all(&mut db)
        .await
        .expect("the retained revisions")
}
