//! `wsfanout`: parses the command line, runs it (`wsfanout_ops::run`), prints the answer.
//! Errors go to standard error with exit status 1 (2 for a bad command line, from clap).

use clap::Parser;
use std::process::ExitCode;
use wsfanout_ops::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("wsfanout: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wsfanout_ops::run(&cli)) {
        Ok(output) => {
            print!("{}", output.render(cli.json));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("wsfanout: {error}");
            ExitCode::FAILURE
        }
    }
}
