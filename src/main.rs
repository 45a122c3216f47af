//! The `gossipcoin` binary: parse the command line, set up logs, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = gossipcoin::cli::Cli::parse();
    gossipcoin::logging::init();
    match gossipcoin::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
