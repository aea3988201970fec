use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use strata_engine_bench::{Cli, Format, report, run_all};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, format) = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Progress goes to stderr so stdout stays clean for csv/json.
    let results = match run_all(&config, |line| eprintln!("{line}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let output = match format {
        Format::Table => Ok(report::table(&config, &results)),
        Format::Csv => Ok(report::csv(&results)),
        Format::Json => report::json(&config, &results),
    };
    match output {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
