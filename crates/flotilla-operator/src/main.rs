//! `flotilla`: the Flotilla federation operator and its tools.
mod cli;
mod crd;
mod http;
mod join;
mod leader;
mod preview;
mod renewer;
mod run;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Crd => crd::print(),
        Command::Join(args) => join::join(args).await,
        Command::Unjoin(args) => join::unjoin(args).await,
        Command::Preview(args) => preview::preview(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flotilla: {e:#}");
            ExitCode::FAILURE
        }
    }
}
