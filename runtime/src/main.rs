//! `visualbyte`: the command line. It only parses arguments and wires the library's stages together.
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose);
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message before it
/// already contains (library errors quote their I/O cause in their own message).
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: "cannot open the index x: No such file or directory (os error 2): No such file or
    /// directory (os error 2)" — the I/O cause was printed twice.
    #[test]
    fn a_cause_already_quoted_is_not_printed_twice() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = visualbyte::render::RenderError::Io {
            path: "q.wav".into(),
            source: io,
        };
        let err = anyhow::Error::new(err).context("query");
        assert_eq!(describe(&err), "query: cannot read q.wav: no such file");
    }
}
