//! `flotilla crd`: the CRDs, as multi-document YAML, for `flotilla crd | kubectl apply -f -`.
pub fn print() -> anyhow::Result<()> {
    for file in flotilla_api::crd_files() {
        println!("---\n{}", file.to_yaml()?);
    }
    Ok(())
}
