//! Resampling of the position-embedding grid, exactly as PyTorch's `interpolate(mode="bicubic",
//! align_corners=False)` does it: plain ([`bicubic`], what transformers' DINOv2 calls when the
//! input grid differs from the trained one) and with `antialias=True` ([`bicubic_antialiased`],
//! what DINOv2 with registers calls).
//!
//! Plain, per output index i of an axis of `n_in` -> `n_out`: the source coordinate is
//! `(i + 0.5) * n_in / n_out - 0.5` (not clamped), its floor and the three neighbours around it
//! take the cubic-convolution weights of Keys with `A = -0.75`, and an index outside the input
//! reads the nearest edge value. The two axes are separable.

const A: f32 = -0.75;

fn near(x: f32) -> f32 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}

fn far(x: f32) -> f32 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// The (input index, weight) taps of each output index along one axis.
type Taps = Vec<Vec<(usize, f32)>>;

/// Plain: the four neighbours of the source coordinate, an index outside the input reading the
/// nearest edge value.
fn taps(n_in: usize, n_out: usize) -> Taps {
    let scale = n_in as f32 / n_out as f32;
    let clamp = |i: isize| i.clamp(0, n_in as isize - 1) as usize;
    (0..n_out)
        .map(|i| {
            let real = scale * (i as f32 + 0.5) - 0.5;
            let floor = real.floor();
            let t = real - floor;
            let w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
            let first = floor as isize - 1;
            (0..4).map(|k| (clamp(first + k as isize), w[k])).collect()
        })
        .collect()
}

/// Applies per-axis taps to a grid `[h_in, w_in, dim]` (row-major, channels last): rows first
/// along x, then their weighted sum along y.
fn separable(grid: &[f32], w_in: usize, ys: &Taps, xs: &Taps, dim: usize) -> Vec<f32> {
    let w_out = xs.len();
    let mut out = vec![0.0f32; ys.len() * w_out * dim];
    let mut row = vec![0.0f32; dim];
    for (oy, ty) in ys.iter().enumerate() {
        for (ox, tx) in xs.iter().enumerate() {
            let cell = &mut out[(oy * w_out + ox) * dim..][..dim];
            for &(y, wy) in ty {
                row.fill(0.0);
                for &(x, wx) in tx {
                    let src = &grid[(y * w_in + x) * dim..][..dim];
                    for (r, s) in row.iter_mut().zip(src) {
                        *r += wx * s;
                    }
                }
                for (c, r) in cell.iter_mut().zip(&row) {
                    *c += wy * r;
                }
            }
        }
    }
    out
}

/// Resamples a grid `[h_in, w_in, dim]` (row-major, channels last) to `[h_out, w_out, dim]`.
pub fn bicubic(
    grid: &[f32],
    (h_in, w_in): (usize, usize),
    (h_out, w_out): (usize, usize),
    dim: usize,
) -> Vec<f32> {
    assert_eq!(grid.len(), h_in * w_in * dim);
    separable(grid, w_in, &taps(h_in, h_out), &taps(w_in, w_out), dim)
}

/// Keys' cubic kernel with `a = -0.5`, the one PyTorch's antialiased bicubic (and PIL) uses,
/// spelled as PyTorch evaluates it. `preprocess` has PIL's spelling of the same kernel: the two
/// differ in float rounding, as the two libraries do, so each stays with the code it mirrors.
fn keys_half(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// (first input index, normalised weights) per output index, as PyTorch's antialiased kernels
/// compute them: when shrinking by `scale = n_in / n_out` the kernel is stretched by `scale`
/// (support `2 * scale`) so every input contributes; the taps stop at the edges (no clamped
/// reads) and the weights are renormalised to sum to one.
fn taps_antialiased(n_in: usize, n_out: usize) -> Taps {
    let scale = n_in as f64 / n_out as f64;
    let (support, invscale) = if scale >= 1.0 {
        (2.0 * scale, 1.0 / scale)
    } else {
        (2.0, 1.0)
    };
    (0..n_out)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            // Truncation toward zero, as C's cast does.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let w: Vec<f64> = (first..end)
                .map(|j| keys_half((j as f64 - center + 0.5) * invscale))
                .collect();
            let total: f64 = w.iter().sum();
            (first..end)
                .zip(w)
                .map(|(j, v)| (j, if total != 0.0 { v / total } else { v } as f32))
                .collect()
        })
        .collect()
}

/// Resamples a grid `[h_in, w_in, dim]` (row-major, channels last) to `[h_out, w_out, dim]` as
/// `interpolate(mode="bicubic", align_corners=False, antialias=True)` does.
pub fn bicubic_antialiased(
    grid: &[f32],
    (h_in, w_in): (usize, usize),
    (h_out, w_out): (usize, usize),
    dim: usize,
) -> Vec<f32> {
    assert_eq!(grid.len(), h_in * w_in * dim);
    let ys = taps_antialiased(h_in, h_out);
    separable(grid, w_in, &ys, &taps_antialiased(w_in, w_out), dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_size_is_the_identity_and_weights_sum_to_one() {
        let grid: Vec<f32> = (0..3 * 4 * 2).map(|v| v as f32 * 0.5).collect();
        let same = bicubic(&grid, (3, 4), (3, 4), 2);
        for (a, b) in grid.iter().zip(&same) {
            assert!((a - b).abs() < 1e-6, "{a} {b}");
        }
        for (n_in, n_out) in [(4, 7), (7, 3), (37, 16)] {
            for t in taps(n_in, n_out)
                .iter()
                .chain(&taps_antialiased(n_in, n_out))
            {
                assert!((t.iter().map(|(_, w)| w).sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn matches_values_torch_gives() {
        // torch.nn.functional.interpolate(torch.arange(4.).reshape(1, 1, 1, 4) ** 2,
        //     size=(1, 6), mode="bicubic", align_corners=False), as torch 2.15 prints it.
        let grid = [0.0f32, 1.0, 4.0, 9.0];
        let out = bicubic(&grid, (1, 4), (1, 6), 1);
        let torch = [-0.0868f32, 0.2188, 1.4306, 3.1528, 6.7812, 9.4340];
        for (a, b) in out.iter().zip(torch) {
            assert!((a - b).abs() < 2e-4, "{out:?}");
        }
    }

    #[test]
    fn antialiased_matches_values_torch_gives() {
        // torch.nn.functional.interpolate(torch.arange(6.).reshape(1, 1, 1, 6) ** 2,
        //     size=(1, n), mode="bicubic", align_corners=False, antialias=True), torch 2.15,
        //     for n = 4 (shrinking: every input weighs in) and n = 9 (growing).
        let grid = [0.0f32, 1.0, 4.0, 9.0, 16.0, 25.0];
        let down = bicubic_antialiased(&grid, (1, 6), (1, 4), 1);
        let torch_down = [0.1586f32, 2.9770, 10.8867, 22.2783];
        for (a, b) in down.iter().zip(torch_down) {
            assert!((a - b).abs() < 2e-4, "{down:?}");
        }
        let up = bicubic_antialiased(&grid, (1, 6), (1, 9), 1);
        let torch_up = [
            -0.0658f32, 0.2941, 1.3611, 3.3611, 6.2500, 10.0278, 14.6944, 21.1765, 25.5921,
        ];
        for (a, b) in up.iter().zip(torch_up) {
            assert!((a - b).abs() < 2e-4, "{up:?}");
        }
    }
}
