//! The `gossipcoin` binary: parse the command line, set up logs, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = gossipcoin::cli::Cli::parse();
    if let Err(e) = gossipcoin::logging::init(cli.log_format, cli.log_file.as_deref()) {
        eprintln!("error: cannot open log file: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match gossipcoin::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
