use clap::Parser;
use medallion::cli::{Cli, run};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        eprintln!(
            "The desktop app is not part of this build yet. Use a command, e.g.\n  medallion run projects/users_batch.toml --lakehouse DIR\nSee `medallion --help`."
        );
        return std::process::ExitCode::from(2);
    };
    match run(command) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
