//! The NumPy `.npy` format, version 1.0: little-endian `f4`/`f8` arrays in C order.
//! Reference: numpy/lib/format.py, "A Simple File Format for NumPy Arrays" (NEP 1).
//! Written so that `numpy.load` reads our log-mels, and read so that tests can compare
//! against golden arrays librosa produced.

use std::io::Write;
use std::path::Path;

use crate::error::{DspError, Result};
use crate::matrix::Matrix;
use musicdiff_common::atomic::OutputSet;

const MAGIC: &[u8] = b"\x93NUMPY";

/// An array read from a `.npy` file, converted to `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl NpyArray {
    /// Views a 2-D array as a [`Matrix`]; a 1-D array becomes a single row.
    pub fn into_matrix(self) -> Option<Matrix<f64>> {
        match self.shape.as_slice() {
            [r, c] => Some(Matrix::from_vec(*r, *c, self.data)),
            [n] => Some(Matrix::from_vec(1, *n, self.data)),
            _ => None,
        }
    }
}

fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic(6) + version(2) + header_len(2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let mut h = Vec::with_capacity(unpadded + pad);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&[1, 0]);
    let len = (dict.len() + pad + 1) as u16;
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    h
}

/// Writes `m` as a float32 array of shape `[rows, cols]`, atomically.
pub fn write_f32_matrix(path: &Path, m: &Matrix<f32>) -> Result<()> {
    let mut set = OutputSet::new();
    stage_f32_matrix(&mut set, path, m)?;
    Ok(set.commit()?)
}

/// [`write_f32_matrix`] as one file of an [`OutputSet`]: nothing appears at `path` until the
/// set is committed.
pub fn stage_f32_matrix(set: &mut OutputSet, path: &Path, m: &Matrix<f32>) -> Result<()> {
    set.write(path, |w| {
        let mut bytes = header("<f4", &[m.rows(), m.cols()]);
        bytes.reserve(m.as_slice().len() * 4);
        for v in m.as_slice() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&bytes).map_err(|e| DspError::output(path, &e))
    })
}

/// Reads a little-endian `f4` or `f8` C-order array of any rank.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| DspError::io(path, e))?;
    let bad = |detail: &str| DspError::Npy {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing \\x93NUMPY magic"));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported format version")),
    };
    let hend = hstart + hlen;
    let dict = std::str::from_utf8(bytes.get(hstart..hend).ok_or_else(|| bad("short header"))?)
        .map_err(|_| bad("header is not UTF-8"))?;
    let field = |key: &str| -> Option<&str> {
        let at = dict.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = dict[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| bad("no descr"))?;
    let width = if descr.starts_with("'<f8'") {
        8
    } else if descr.starts_with("'<f4'") {
        4
    } else {
        return Err(bad("only little-endian f4/f8 arrays are read"));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad("Fortran-order arrays are not read"));
    }
    let shape_txt = field("shape").ok_or_else(|| bad("no shape"))?;
    let close = shape_txt.find(')').ok_or_else(|| bad("malformed shape"))?;
    let shape = shape_txt[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("malformed shape")))
        .collect::<Result<Vec<_>>>()?;
    let count: usize = shape.iter().product();
    let body = &bytes[hend..];
    if body.len() != count * width {
        return Err(bad("data length does not match the shape"));
    }
    let data = if width == 8 {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect()
    };
    Ok(NpyArray { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_to_64_bytes() {
        for shape in [vec![3usize], vec![80, 1293], vec![1, 2, 3]] {
            assert_eq!(header("<f4", &shape).len() % 64, 0);
        }
        let h = header("<f4", &[5]);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (5,)"));
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        let m = Matrix::from_vec(2, 3, vec![1.0f32, -2.5, 3.25, 0.0, 1e-5, f32::MAX]);
        write_f32_matrix(&p, &m).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        let expect: Vec<f64> = m.as_slice().iter().map(|&v| v as f64).collect();
        assert_eq!(back.data, expect);
    }

    #[test]
    fn rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"hello world, not numpy").unwrap();
        let err = read(&p).unwrap_err().to_string();
        assert!(err.contains("bad.npy") && err.contains("magic"), "{err}");
    }
}
