use clap::Args;

#[derive(Debug, Args)]
pub struct QueryArgs {}

pub fn run(_args: QueryArgs) -> anyhow::Result<()> {
    anyhow::bail!("query is not implemented yet")
}
