//! `gateway-emulator`: the receipts and payments services on loopback. See
//! `refund_local::gateway` for the endpoints and the faults.

use clap::Parser;
use refund_local::{gateway, logging};

#[tokio::main]
async fn main() {
    logging::init();
    let args = gateway::GatewayArgs::parse();
    let running = match gateway::spawn(args.addr(), args.config()).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("gateway-emulator: cannot listen on {}: {e}", args.addr());
            std::process::exit(1);
        }
    };
    tracing::info!(
        url = %running.url(),
        seed = running.gateway.seed(),
        faults = ?args.config().faults,
        "gateway emulator listening"
    );
    logging::until_stopped().await;
    tracing::info!("gateway emulator stopped");
}
