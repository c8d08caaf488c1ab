//! IMG.LY's model packages on npm: the tarball's file name, and a model put
//! back together from the chunks the package splits it into.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NpmError {
    #[error("cannot read the npm tarball ({source}): {}", path.display())]
    Read {
        source: std::io::Error,
        path: PathBuf,
    },
    #[error("{what} not found in the download ({detail}): {}", path.display())]
    MissingPart {
        what: String,
        detail: String,
        path: PathBuf,
    },
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> NpmError {
    let path = path.to_path_buf();
    move |source| NpmError::Read { source, path }
}

/// The file name `npm pack` gives `@scope/name@version`: `scope-name-version.tgz`.
pub fn npm_tarball_name(package: &str, version: &str) -> String {
    format!(
        "{}-{version}.tgz",
        package.trim_start_matches('@').replace('/', "-")
    )
}

/// Concatenates the chunks of one resource of an IMG.LY data package.
pub fn assemble_npm_resource(tarball: &Path, resource: &str) -> Result<Vec<u8>, NpmError> {
    let missing = |what: &str, detail: String| NpmError::MissingPart {
        what: what.to_string(),
        detail,
        path: tarball.into(),
    };
    let open = || -> Result<tar::Archive<flate2::read::GzDecoder<fs::File>>, NpmError> {
        let file = fs::File::open(tarball).map_err(read_err(tarball))?;
        Ok(tar::Archive::new(flate2::read::GzDecoder::new(file)))
    };

    // Pass 1: the resource index.
    let mut index_json = None;
    for entry in open()?.entries().map_err(read_err(tarball))? {
        let mut entry = entry.map_err(read_err(tarball))?;
        if entry
            .path()
            .is_ok_and(|p| p == Path::new("package/dist/resources.json"))
        {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(read_err(tarball))?;
            index_json = Some(text);
            break;
        }
    }
    let index_json = index_json.ok_or_else(|| missing("dist/resources.json", "no index".into()))?;
    let chunks = chunk_list(&index_json, resource).map_err(|detail| missing(resource, detail))?;

    // Pass 2: the chunks, in any order in the archive.
    let wanted: HashMap<&str, usize> = chunks
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; chunks.len()];
    for entry in open()?.entries().map_err(read_err(tarball))? {
        let mut entry = entry.map_err(read_err(tarball))?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        if let Some(&i) = name.as_deref().and_then(|n| wanted.get(n)) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(read_err(tarball))?;
            parts[i] = Some(bytes);
        }
    }
    let mut out = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let part = part
            .ok_or_else(|| missing("model chunk", format!("chunk {} ({}) absent", i, chunks[i])))?;
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// The chunk file names of `resource`, in order, from `resources.json`.
fn chunk_list(index_json: &str, resource: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Resource {
        chunks: Vec<Chunk>,
    }
    #[derive(serde::Deserialize)]
    struct Chunk {
        hash: String,
        offsets: (u64, u64),
    }
    let index: HashMap<String, serde_json::Value> =
        serde_json::from_str(index_json).map_err(|e| format!("resources.json: {e}"))?;
    let value = index
        .get(resource)
        .ok_or_else(|| format!("resources.json lists no {resource}"))?;
    let mut parsed: Resource =
        serde_json::from_value(value.clone()).map_err(|e| format!("{resource}: {e}"))?;
    parsed.chunks.sort_by_key(|c| c.offsets.0);
    Ok(parsed.chunks.into_iter().map(|c| c.hash).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_back_in_offset_order() {
        let json = r#"{"/models/x": {"chunks": [
            {"hash": "b", "offsets": [10, 20]},
            {"hash": "a", "offsets": [0, 10]}], "size": 20}}"#;
        assert_eq!(chunk_list(json, "/models/x").unwrap(), vec!["a", "b"]);
        assert!(
            chunk_list(json, "/models/y")
                .unwrap_err()
                .contains("/models/y")
        );
    }
}
