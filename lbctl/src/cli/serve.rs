//! `lbctl serve`: the built-in web server each server node runs.

use std::net::SocketAddr;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Server name shown in the page.
    #[arg(long, env = "LBCTL_NODE", default_value = "server")]
    name: String,
    #[arg(long, default_value = "0.0.0.0:80")]
    listen: SocketAddr,
}

pub async fn run(a: Args) -> Result<()> {
    crate::webserver::run(a.name, a.listen).await
}
