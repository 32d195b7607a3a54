use clap::Args;

#[derive(Debug, Args)]
pub struct InfoArgs {}

#[derive(Debug, Args)]
pub struct EmbedArgs {}

pub fn run(_args: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("info is not implemented yet")
}

pub fn embed(_args: EmbedArgs) -> anyhow::Result<()> {
    anyhow::bail!("embed is not implemented yet")
}
