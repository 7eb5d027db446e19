//! Writes Flotilla's CRDs as YAML, one file per kind, into the directory given as the only
//! argument (default `crds`). `make check` runs it into a scratch directory and fails when the
//! result differs from what is committed.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "crds".to_string()),
    );
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("crdgen: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for file in flotilla_api::crd_files() {
        let path = dir.join(&file.file_name);
        let written = file
            .to_yaml()
            .map_err(|e| e.to_string())
            .and_then(|yaml| std::fs::write(&path, yaml).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("crdgen: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
