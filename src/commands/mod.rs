//! One module per subcommand.

mod convert;
mod demo;
mod inspect;
mod mix;
pub(crate) mod report;
mod synth;

use crate::cli::{Cli, Command};

/// For the commands that write a trace: an interrupt (Ctrl-C, SIGTERM or
/// SIGHUP) removes the temporary output and exits as a process killed by
/// SIGINT would (130). The async commands (replay, mock) handle their
/// signals themselves.
fn remove_partial_output_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        traces::remove_pending_outputs();
        eprintln!("interrupted");
        std::process::exit(130);
    });
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(
        cli.command,
        Command::Convert(_) | Command::Synth(_) | Command::Mix(_) | Command::Tokenize(_)
    ) {
        remove_partial_output_on_interrupt();
    }
    match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Mix(args) => mix::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Tokenize(args) => crate::tokenize::run(args),
        Command::Replay(args) => crate::replay::run(*args),
        Command::Mock(args) => crate::mock::run(args),
        Command::Report(args) => report::run_report(args),
        Command::Compare(args) => report::run_compare(args),
    }
}
