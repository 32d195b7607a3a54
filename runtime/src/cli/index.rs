use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Not implemented yet.
    Info,
}

pub fn run(_cmd: IndexCommand) -> anyhow::Result<()> {
    anyhow::bail!("index commands are not implemented yet")
}
