//! One module per subcommand.

mod convert;
mod demo;
mod inspect;
mod mix;
mod synth;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Mix(args) => mix::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Tokenize(args) => crate::tokenize::run(args),
        Command::Replay(args) => crate::replay::run(args),
        Command::Mock(args) => crate::mock::run(args),
    }
}
