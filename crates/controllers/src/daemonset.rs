//! The daemonset controller (being written).

use gantry_client::Client;

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(_client: Client) {
    std::future::pending::<()>().await;
}
