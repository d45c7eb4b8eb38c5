//! Spectrogram pictures: a matrix `[frequency, time]` rendered as a PNG with a perceptually
//! uniform colour map (magma or viridis; van der Walt & Smith, matplotlib 2.0 colour maps),
//! time increasing to the right and frequency increasing upwards, as `librosa.display.specshow`.

use std::path::Path;

use ::image::{ImageBuffer, ImageFormat, Rgb};

use crate::error::{DspError, Result};
use crate::matrix::Matrix;
use musicdiff_common::atomic::OutputSet;

/// Colour maps for spectrogram images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMap {
    #[default]
    Magma,
    Viridis,
}

impl ColorMap {
    fn gradient(self) -> colorous::Gradient {
        match self {
            ColorMap::Magma => colorous::MAGMA,
            ColorMap::Viridis => colorous::VIRIDIS,
        }
    }
}

/// How a spectrogram becomes a picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageOptions {
    pub colormap: ColorMap,
    /// Values more than this far below the maximum (in the matrix's units) are drawn as the
    /// darkest colour. For natural-log power, 80 dB is `8 ln 10 ~ 18.4`.
    pub dynamic_range: f32,
    /// Images are scaled up by whole pixels until at least this tall and wide.
    pub min_size: u32,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            colormap: ColorMap::Magma,
            dynamic_range: 8.0 * std::f32::consts::LN_10,
            min_size: 256,
        }
    }
}

/// Renders `values [rows = frequency, cols = time]` to RGB pixels. Row 0 (lowest frequency)
/// is at the bottom of the picture.
pub fn render(values: &Matrix<f32>, opts: &ImageOptions) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    let (rows, cols) = values.shape();
    let finite = || values.as_slice().iter().copied().filter(|v| v.is_finite());
    let max = finite().fold(f32::NEG_INFINITY, f32::max);
    let min = finite()
        .fold(f32::INFINITY, f32::min)
        .max(max - opts.dynamic_range);
    let span = if max > min { max - min } else { 1.0 };
    let sy = opts.min_size.div_ceil(rows.max(1) as u32).max(1);
    let sx = opts.min_size.div_ceil(cols.max(1) as u32).max(1);
    let (w, h) = (cols as u32 * sx, rows as u32 * sy);
    let gradient = opts.colormap.gradient();
    ImageBuffer::from_fn(w, h, |x, y| {
        let r = rows - 1 - (y / sy) as usize;
        let c = (x / sx) as usize;
        let v = *values.get(r, c);
        let t = if v.is_finite() {
            ((v - min) / span).clamp(0.0, 1.0) as f64
        } else {
            0.0
        };
        let col = gradient.eval_continuous(t);
        Rgb([col.r, col.g, col.b])
    })
}

/// Writes `values` as a PNG picture at `path`, atomically.
pub fn write_png(path: &Path, values: &Matrix<f32>, opts: &ImageOptions) -> Result<()> {
    let mut set = OutputSet::new();
    stage_png(&mut set, path, values, opts)?;
    Ok(set.commit()?)
}

/// [`write_png`] as one file of an [`OutputSet`]: nothing appears at `path` until the set is
/// committed.
pub fn stage_png(
    set: &mut OutputSet,
    path: &Path,
    values: &Matrix<f32>,
    opts: &ImageOptions,
) -> Result<()> {
    if values.rows() == 0 || values.cols() == 0 {
        return Err(DspError::ImageWrite {
            path: path.to_path_buf(),
            detail: "the spectrogram is empty (input shorter than one frame?)".into(),
        });
    }
    let img = render(values, opts);
    set.write(path, |w| {
        img.write_to(w, ImageFormat::Png)
            .map_err(|e| DspError::ImageWrite {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_frequencies_are_at_the_bottom_and_time_runs_right() {
        // Bright only at row 0 (lowest frequency), last column (latest time).
        let mut m = Matrix::from_vec(4, 3, vec![0.0f32; 12]);
        m.row_mut(0)[2] = 10.0;
        let opts = ImageOptions {
            min_size: 1,
            ..Default::default()
        };
        let img = render(&m, &opts);
        assert_eq!(img.dimensions(), (3, 4));
        let bright = img.get_pixel(2, 3);
        let dark = img.get_pixel(0, 0);
        let luma = |p: &Rgb<u8>| p.0.iter().map(|&v| v as u32).sum::<u32>();
        assert!(luma(bright) > 600, "{bright:?}");
        assert!(luma(dark) < 60, "{dark:?}");
    }

    #[test]
    fn small_spectrograms_are_scaled_up() {
        let m = Matrix::from_vec(80, 10, vec![0.0f32; 800]);
        let img = render(&m, &ImageOptions::default());
        assert_eq!(img.dimensions(), (260, 320));
    }
}
