//! The `gossipcoin` binary: parse the command line, set up logs, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match gossipcoin::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let args: Vec<String> = std::env::args().collect();
            if e.use_stderr()
                && let Some(hint) = gossipcoin::cli::single_dash_hint(&args)
            {
                eprintln!("\nhint: {hint}");
            }
            return std::process::ExitCode::from(e.exit_code() as u8);
        }
    };
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
