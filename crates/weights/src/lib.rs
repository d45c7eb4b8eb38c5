//! Weights files, one owner for every network musicdiff stores (the DiT, the vocoder): burn
//! modules serialised to safetensors (by burn-store) with the header rewritten in a fixed order
//! ([`canonical`]: burn-store writes its metadata map in no fixed order, so equal weights would
//! hash differently), written atomically (`musicdiff_common::atomic`); stored as f16 or f32
//! ([`convert_dtype`]); identified by SHA-256 ([`sha256_hex`]); refused when they hold NaN or
//! infinite values ([`first_non_finite`]) or do not fit the architecture they are read into
//! ([`load_into`]).

pub mod dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use musicdiff_common::atomic::write_bytes;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A weights file that cannot be written, read or used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct WeightsError {
    pub path: PathBuf,
    pub detail: String,
}

impl WeightsError {
    pub fn new(path: &Path, detail: impl ToString) -> Self {
        Self {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        }
    }
}

pub type Result<T, E = WeightsError> = std::result::Result<T, E>;

/// Storage type of a weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    F16,
    F32,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `module`'s parameters as safetensors bytes (f32), header in canonical order, with the
/// metadata entry `format`.
pub fn to_bytes<M: Module>(module: &M, format: &str, path: &Path) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None).metadata("format", format);
    module
        .save_into(&mut store)
        .map_err(|e| WeightsError::new(path, e))?;
    let bytes = store.get_bytes().map_err(|e| WeightsError::new(path, e))?;
    canonical(&bytes).map_err(|e| WeightsError::new(path, e))
}

/// Writes `module`'s parameters to `path` (f32 safetensors), replacing it atomically.
pub fn save<M: Module>(module: &M, format: &str, path: &Path) -> Result<()> {
    let bytes = to_bytes(module, format, path)?;
    write_bytes(path, &bytes).map_err(|e| WeightsError::new(path, e))
}

/// What [`load_into`] found besides the parameters it read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Parameters of the architecture the file did not hold (they keep their initial values).
    pub missing: Vec<String>,
}

/// Reads the parameters in safetensors `bytes` (f32) into `module` (a freshly built
/// architecture). Anything in the file the module has no place for, or of another shape, is an
/// error, and so is a missing parameter unless `partial`; `describe` names the architecture in
/// the message (e.g. "8 blocks, d_model 256"). `path` names the file's origin in errors.
pub fn load_into<M: Module>(
    mut module: M,
    bytes: Vec<u8>,
    path: &Path,
    partial: bool,
    describe: &str,
) -> Result<(M, Loaded)> {
    // Always partial at the store, which otherwise reports missing tensors as a many-line
    // table; what is missing is judged here, in one line.
    let mut store = SafetensorsStore::from_bytes(Some(bytes)).allow_partial(true);
    let result = module.load_from(&mut store).map_err(|e| {
        let e = e.to_string();
        WeightsError::new(
            path,
            format!(
                "does not fit the config: {}",
                e.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        )
    })?;
    let mut missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
    missing.sort();
    let refused_missing = if partial { &[][..] } else { &missing[..] };
    if !refused_missing.is_empty() || !result.errors.is_empty() || !result.unused.is_empty() {
        let mut unused = result.unused.clone();
        unused.sort();
        let mut parts = Vec::new();
        let mut count = |n: usize, what: &str, first: Option<String>| {
            if let Some(first) = first {
                parts.push(format!("{n} {what} (first: {first})"));
            }
        };
        count(
            refused_missing.len(),
            "tensors missing",
            refused_missing.first().cloned(),
        );
        count(unused.len(), "unexpected", unused.first().cloned());
        count(
            result.errors.len(),
            "do not fit",
            result.errors.first().map(|e| e.to_string()),
        );
        return Err(WeightsError::new(
            path,
            format!("does not fit the config ({describe}): {}", parts.join(", ")),
        ));
    }
    Ok((module, Loaded { missing }))
}

/// Every parameter of `module` by its name in a weights file, with its shape.
pub fn parameter_table<M: Module>(module: &M) -> Result<BTreeMap<String, Vec<usize>>> {
    let here = Path::new("(parameter table)");
    let bytes = to_bytes(module, "table", here)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::new(here, e))?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect())
}

/// Rewrites the header of safetensors `bytes` in a fixed order (metadata keys and tensor names
/// sorted; the tensor data is untouched), so that equal tensors and metadata give equal bytes.
pub fn canonical(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let bad = |what: &str| format!("not a safetensors file: {what}");
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| bad("shorter than its header length"))?;
    let header = bytes
        .get(8..8usize.saturating_add(n))
        .ok_or_else(|| bad("header runs past the end"))?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    if let Some(meta) = entries.remove("__metadata__") {
        let sorted: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(meta).map_err(|e| bad(&e.to_string()))?;
        entries.insert(
            "__metadata__".into(),
            serde_json::to_value(sorted).expect("a map"),
        );
    }
    // Tensor infos are objects of dtype, shape and offsets: sort their keys too.
    let ordered: BTreeMap<&String, BTreeMap<String, serde_json::Value>> = entries
        .iter()
        .map(|(k, v)| {
            serde_json::from_value(v.clone())
                .map(|m| (k, m))
                .map_err(|e| bad(&e.to_string()))
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut json = serde_json::to_string(&ordered).expect("serialisable");
    // Data starts 8-byte aligned, as the safetensors writer pads it.
    while !json.len().is_multiple_of(8) {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json.as_bytes());
    out.extend(&bytes[8 + n..]);
    Ok(out)
}

/// The first tensor (in name order) of safetensors `bytes` that holds a NaN or infinite value,
/// with that value. f32 and f16 tensors are checked; `path` names the file in errors.
pub fn first_non_finite(bytes: &[u8], path: &Path) -> Result<Option<(String, f32)>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::new(path, e))?;
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    for name in names {
        let view = st.tensor(name).map_err(|e| WeightsError::new(path, e))?;
        let bad = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .find(|v| !v.is_finite()),
            // Exponent bits all set: infinite (zero mantissa) or NaN.
            Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .find(|h| h & 0x7C00 == 0x7C00)
                .map(|h| match (h & 0x03FF, h & 0x8000) {
                    (0, 0) => f32::INFINITY,
                    (0, _) => f32::NEG_INFINITY,
                    _ => f32::NAN,
                }),
            _ => None,
        };
        if let Some(v) = bad {
            return Ok(Some((name.to_string(), v)));
        }
    }
    Ok(None)
}

/// Re-encodes every f32 tensor of a safetensors file as `to` (f16 or f32), keeping names,
/// shapes and metadata, with the header in a fixed order. Tensors of other dtypes are refused.
pub fn convert_dtype(bytes: &[u8], to: WeightDtype, path: &Path) -> Result<Vec<u8>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::new(path, e))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::new(path, e))?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(names.len());
    for name in names {
        let view = st.tensor(&name).map_err(|e| WeightsError::new(path, e))?;
        let data = view.data();
        let out = match (view.dtype(), to) {
            (Dtype::F32, WeightDtype::F32) | (Dtype::F16, WeightDtype::F16) => data.to_vec(),
            (Dtype::F32, WeightDtype::F16) => data
                .chunks_exact(4)
                .flat_map(|c| {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    half::f16::from_f32(v).to_le_bytes()
                })
                .collect(),
            (Dtype::F16, WeightDtype::F32) => data
                .chunks_exact(2)
                .flat_map(|c| {
                    half::f16::from_le_bytes([c[0], c[1]])
                        .to_f32()
                        .to_le_bytes()
                })
                .collect(),
            (other, _) => {
                return Err(WeightsError::new(
                    path,
                    format!("tensor {name} has dtype {other:?}; only f16 and f32 are supported"),
                ));
            }
        };
        owned.push((name, view.shape().to_vec(), out));
    }
    let dtype = match to {
        WeightDtype::F16 => Dtype::F16,
        WeightDtype::F32 => Dtype::F32,
    };
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, shape, data)| {
            TensorView::new(dtype, shape.clone(), data)
                .map(|v| (n.clone(), v))
                .map_err(|e| WeightsError::new(path, e))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, meta.metadata().clone())
        .map_err(|e| WeightsError::new(path, e))?;
    // A fixed header order: the same weights give the same bytes, and so the same hash.
    canonical(&bytes).map_err(|e| WeightsError::new(path, e))
}

/// Checks a stored weights file's `bytes` (read from `path`): its SHA-256 against `expected`,
/// recorded in `record` (a truncated or swapped file is reported as such rather than as a shape
/// mismatch); widens f16 to f32; refuses non-finite values. Returns f32 safetensors bytes for
/// [`load_into`].
pub fn checked(
    bytes: Vec<u8>,
    path: &Path,
    dtype: WeightDtype,
    expected: &str,
    record: &str,
) -> Result<Vec<u8>> {
    let hash = sha256_hex(&bytes);
    if hash != expected {
        return Err(WeightsError::new(
            path,
            format!(
                "SHA-256 {hash} does not match {expected} recorded in {record}: the weights were changed or damaged"
            ),
        ));
    }
    let f32_bytes = match dtype {
        WeightDtype::F32 => bytes,
        WeightDtype::F16 => convert_dtype(&bytes, WeightDtype::F32, path)?,
    };
    // A NaN or infinity (a diverged run exported, a damaged file re-hashed) would make every
    // output silent or noise.
    if let Some((tensor, v)) = first_non_finite(&f32_bytes, path)? {
        return Err(WeightsError::new(
            path,
            format!("tensor {tensor} holds {v}: the weights are unusable (non-finite values)"),
        ));
    }
    Ok(f32_bytes)
}
